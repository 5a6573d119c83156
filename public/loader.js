// Starts Burrow's WebAssembly app. Trunk writes the hashed names of the wasm-bindgen glue and of
// the .wasm file into this script tag's data attributes (see pattern_script in Trunk.toml); an
// external module keeps the page free of inline scripts, so the Content-Security-Policy needs
// no 'unsafe-inline'.
const tag = document.querySelector("script[data-burrow-js]");
const glue = await import(tag.dataset.burrowJs);
await glue.default({ module_or_path: tag.dataset.burrowWasm });
