// The real `aws` CLI against a local `burrow serve`'s control plane, as an operator would open
// a tunnel by hand: `aws iotsecuretunneling … --endpoint-url http://127.0.0.1:PORT`, signed
// with test credentials (the emulator checks the signature's shape, not the key).
import { execFileSync } from 'node:child_process';

/** Runs `aws iotsecuretunneling ARGS…` against `endpoint` and returns its JSON answer. */
export function awsTunneling(endpoint: string, args: string[]): Record<string, unknown> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('AWS_')) delete env[name];
  Object.assign(env, {
    AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
    AWS_MAX_ATTEMPTS: '1',
  });
  const full = ['iotsecuretunneling', ...args, '--endpoint-url', endpoint, '--region', 'us-east-1', '--output', 'json'];
  try {
    const out = execFileSync('aws', full, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out.trim() ? (JSON.parse(out) as Record<string, unknown>) : {};
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`aws ${args.join(' ')} failed: ${e.message}\n${e.stderr ?? ''}`);
  }
}
