// Burrow's download service worker: streams a file the page receives over SFTP to the
// browser's download manager, for browsers without the File System Access API.
//
// The page registers this worker only when it first needs it (never on the first screen). For
// each download it posts {id, name, size} with a MessagePort, then navigates a hidden frame to
// ./burrow-download/<id>; this worker answers that request with a stream fed from the port.
// Flow control: the stream asks the page for more ({pull}) whenever its queue has room, and
// the page sends one chunk per request, so neither side holds more than about 1 MiB. An
// error from the page ({error}) fails the download, so the browser keeps it as an incomplete
// (partial) download instead of a file that looks complete. It touches no other request.
'use strict';

const PREFIX = '/burrow-download/';
const pending = new Map();

// It never claims the page: only the hidden frame's navigation needs it, and that is a new
// client the active worker sees anyway.
self.addEventListener('install', () => self.skipWaiting());

self.addEventListener('message', (event) => {
  const { id, name, size } = event.data || {};
  const port = event.ports[0];
  if (typeof id !== 'string' || !port) return;
  pending.set(id, { name: String(name || 'download'), size, port });
  port.postMessage({ registered: true });
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  const at = url.pathname.indexOf(PREFIX);
  if (url.origin !== self.location.origin || at < 0) return;
  const id = url.pathname.slice(at + PREFIX.length);
  const download = pending.get(id);
  if (!download) {
    event.respondWith(new Response('This download is no longer available.', { status: 404 }));
    return;
  }
  pending.delete(id);
  // No Content-Length: a file that grows while it is read (a log) must not fail the download.
  const { name, port } = download;
  const stream = new ReadableStream(
    {
      start(controller) {
        port.onmessage = ({ data }) => {
          if (data.chunk) controller.enqueue(new Uint8Array(data.chunk));
          else if (data.done) controller.close();
          else if (data.error) controller.error(new Error(String(data.error)));
        };
      },
      pull() {
        port.postMessage({ pull: true });
      },
      cancel() {
        port.postMessage({ cancelled: true });
      },
    },
    { highWaterMark: 1024 * 1024, size: (chunk) => chunk.byteLength },
  );
  const headers = {
    'Content-Type': 'application/octet-stream',
    'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(name)}`,
    'X-Content-Type-Options': 'nosniff',
  };
  event.respondWith(new Response(stream, { headers }));
});
