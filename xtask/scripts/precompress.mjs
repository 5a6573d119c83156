// Writes `NAME.gz` (gzip -9) and `NAME.br` (brotli q11) beside every text or WebAssembly file of
// the folder given as the only argument (Trunk's dist/), for `burrow serve` to send to browsers
// that accept them. Run by `cargo xtask` after each `trunk build`; Node.js is already required
// there for xterm.js's npm packages.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node precompress.mjs DIST_DIR');
  process.exit(2);
}
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.wasm', '.svg', '.json', '.txt', '.map']);
let files = 0;
for (const name of fs.readdirSync(dir)) {
  const file = path.join(dir, name);
  if (!fs.statSync(file).isFile() || !COMPRESSIBLE.has(path.extname(name))) continue;
  const data = fs.readFileSync(file);
  fs.writeFileSync(`${file}.gz`, zlib.gzipSync(data, { level: 9 }));
  fs.writeFileSync(
    `${file}.br`,
    zlib.brotliCompressSync(data, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length,
      },
    }),
  );
  files += 1;
}
console.log(`precompressed ${files} files in ${dir} (.gz and .br)`);
