// The browser's own floor for echo latency: a bare page, no app, no SSH, no tunnel.
//
// A text area's `keydown` sends one byte over a WebSocket to an echo server on loopback (Node,
// in this process); the echo's `message` event writes a character into the page and asks for an
// animation frame. Per key: keydown → message (the browser's WebSocket round trip when a key
// started it) and message → next animation frame (the wait for a frame to paint in). Driven like
// the app's echo figure (a quiet page, keys from the DevTools Input domain), so the two compare
// directly: what is left above this floor is the app's and the tunnel's.
//
// The text area takes keys as xterm.js's helper text area does: hidden (no size, off screen,
// transparent) and with the key's default action prevented, so the key itself changes nothing on
// screen and the cursor does not blink. A visible text area that takes the typed character
// repaints at the key, and the echo then waits for the frame after that one: measured side by
// side, 15 ms from message to frame at the median against 3 ms, and a slower round trip too.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { QuietPage } from './quiet';

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>echo floor</title></head><body>
<textarea id="keys" style="position:absolute;left:-9999em;top:0;width:0;height:0;opacity:0;border:0;padding:0;resize:none"></textarea><pre id="out"></pre>
<script>
window.__floor = { roundTrip: [], toFrame: [], total: [] };
const ws = new WebSocket('ws://' + location.host + '/');
ws.binaryType = 'arraybuffer';
let keyAt = 0;
document.getElementById('keys').addEventListener('keydown', (event) => {
  keyAt = event.timeStamp;
  event.preventDefault();
  ws.send(new Uint8Array([event.key.charCodeAt(0) || 32]));
});
ws.onmessage = (event) => {
  const at = performance.now();
  document.getElementById('out').textContent += String.fromCharCode(new Uint8Array(event.data)[0]);
  requestAnimationFrame(() => {
    const painted = performance.now();
    window.__floor.roundTrip.push(at - keyAt);
    window.__floor.toFrame.push(painted - at);
    window.__floor.total.push(painted - keyAt);
  });
};
window.__floorReady = new Promise((resolve) => { ws.onopen = resolve; });
</script></body></html>`;

/** Per-key samples (ms) from the bare page. */
export interface FloorSamples {
  roundTrip: number[];
  toFrame: number[];
  total: number[];
}

/** Presses `keys` keys one at a time into the bare page (headless, or `headed`) and returns the samples. */
export async function measureFloor(keys: number, headed = false): Promise<FloorSamples> {
  const server = http.createServer((_req, res) => {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(PAGE);
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket, request) => {
    (request.socket as import('node:net').Socket).setNoDelay(true);
    socket.on('message', (data) => socket.send(data as Buffer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const page = await QuietPage.open(() => undefined, undefined, { headed });
  try {
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.evaluate(() => (window as any).__floorReady.then(() => true));
    await page.evaluate(() => (document.getElementById('keys') as HTMLTextAreaElement).focus());
    // Warm-up, not measured: a headed window drops its very first key (seen under Xvfb), so
    // keys go in until one is echoed, then the samples start afresh.
    for (let tries = 0; ; tries++) {
      await page.press('a');
      await new Promise((resolve) => setTimeout(resolve, 300));
      if (await page.evaluate(() => (window as any).__floor.total.length > 0)) break;
      if (tries === 9) throw new Error('the bare page echoed none of 10 warm-up keys');
    }
    await page.evaluate(() => {
      const floor = (window as any).__floor;
      floor.roundTrip.length = 0;
      floor.toFrame.length = 0;
      floor.total.length = 0;
    });
    for (let key = 0; key < keys; key++) {
      await page.press('a');
      await page.waitForFunction((n) => (window as any).__floor.total.length >= n, key + 1, 10_000);
    }
    return await page.evaluate(() => (window as any).__floor as FloorSamples);
  } finally {
    await page.close();
    wss.close();
    server.close();
  }
}
