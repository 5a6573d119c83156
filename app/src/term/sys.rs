//! Raw `wasm-bindgen` declarations for `@xterm/xterm` 6 and the addons the page loads as classic
//! scripts (UMD globals: `Terminal`, `FitAddon.FitAddon`, `WebglAddon.WebglAddon`, …).
//!
//! The Rust names drop the `Addon` suffix, as a Rust type may not share its name with its
//! JavaScript namespace. Only the members Burrow uses are declared. Everything that can throw is declared with
//! `catch`, so a missing script or an unsupported browser becomes an error, not a trap.
//! Nothing outside [`crate::term`] sees these types.

use js_sys::{Function, Object, Uint8Array};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// `Terminal` from `@xterm/xterm`.
    #[wasm_bindgen(extends = Object)]
    #[derive(Clone)]
    pub type Terminal;

    /// `new Terminal(options)`.
    #[wasm_bindgen(constructor, catch)]
    pub fn new(options: &Object) -> Result<Terminal, JsValue>;

    /// `terminal.open(parent)`: renders into `parent`.
    #[wasm_bindgen(method, catch)]
    pub fn open(this: &Terminal, parent: &web_sys::HtmlElement) -> Result<(), JsValue>;

    /// `terminal.write(data, callback)`: `callback` runs once the bytes are parsed.
    #[wasm_bindgen(method, js_name = write)]
    pub fn write_bytes(this: &Terminal, data: &Uint8Array, callback: &Function);

    /// `terminal.write(text)`.
    #[wasm_bindgen(method, js_name = write)]
    pub fn write_text(this: &Terminal, data: &str);

    /// `terminal.onData(listener)`: typed or pasted text.
    #[wasm_bindgen(method, js_name = onData)]
    pub fn on_data(this: &Terminal, listener: &Function) -> Disposable;

    /// `terminal.onBinary(listener)`: non-UTF-8 input (some mouse reports), one char per byte.
    #[wasm_bindgen(method, js_name = onBinary)]
    pub fn on_binary(this: &Terminal, listener: &Function) -> Disposable;

    /// `terminal.onTitleChange(listener)`: the window title a program set (OSC 0 or 2).
    #[wasm_bindgen(method, js_name = onTitleChange)]
    pub fn on_title_change(this: &Terminal, listener: &Function) -> Disposable;

    /// `terminal.refresh(start, end)`: redraws rows `start..=end`.
    #[wasm_bindgen(method)]
    pub fn refresh(this: &Terminal, start: u32, end: u32);

    /// `terminal.onResize(listener)`: `{cols, rows}` after every size change.
    #[wasm_bindgen(method, js_name = onResize)]
    pub fn on_resize(this: &Terminal, listener: &Function) -> Disposable;

    /// `terminal.cols`.
    #[wasm_bindgen(method, getter)]
    pub fn cols(this: &Terminal) -> u32;

    /// `terminal.rows`.
    #[wasm_bindgen(method, getter)]
    pub fn rows(this: &Terminal) -> u32;

    /// `terminal.loadAddon(addon)`; an addon's `activate` may throw (WebGL does when the
    /// browser has no WebGL2).
    #[wasm_bindgen(method, catch, js_name = loadAddon)]
    pub fn load_addon(this: &Terminal, addon: &Object) -> Result<(), JsValue>;

    /// `terminal.focus()`.
    #[wasm_bindgen(method)]
    pub fn focus(this: &Terminal);

    /// `terminal.reset()`: clears the screen and the scrollback.
    #[wasm_bindgen(method)]
    pub fn reset(this: &Terminal);

    /// `terminal.dispose()`: removes the terminal from the page and disposes its addons.
    #[wasm_bindgen(method)]
    pub fn dispose(this: &Terminal);

    /// `terminal.attachCustomKeyEventHandler(handler)`: `handler` returns `false` to keep a key
    /// from xterm.js.
    #[wasm_bindgen(method, js_name = attachCustomKeyEventHandler)]
    pub fn attach_custom_key_event_handler(this: &Terminal, handler: &Function);

    /// `terminal.hasSelection()`.
    #[wasm_bindgen(method, js_name = hasSelection)]
    pub fn has_selection(this: &Terminal) -> bool;

    /// `terminal.getSelection()`.
    #[wasm_bindgen(method, js_name = getSelection)]
    pub fn get_selection(this: &Terminal) -> String;

    /// `terminal.unicode` (a proposed API: needs `allowProposedApi`).
    #[wasm_bindgen(method, catch, getter)]
    pub fn unicode(this: &Terminal) -> Result<UnicodeHandling, JsValue>;

    /// `terminal.unicode`.
    pub type UnicodeHandling;

    /// `terminal.unicode.activeVersion = version`.
    #[wasm_bindgen(method, catch, setter = activeVersion)]
    pub fn set_active_version(this: &UnicodeHandling, version: &str) -> Result<(), JsValue>;

    /// `terminal.buffer`.
    #[wasm_bindgen(method, getter)]
    pub fn buffer(this: &Terminal) -> BufferNamespace;

    /// `terminal.buffer`: the normal and the alternate screen.
    pub type BufferNamespace;

    /// `terminal.buffer.active`: the screen shown now.
    #[wasm_bindgen(method, getter)]
    pub fn active(this: &BufferNamespace) -> Buffer;

    /// One screen with its scrollback.
    pub type Buffer;

    /// `buffer.type`: `"normal"` or `"alternate"`.
    #[wasm_bindgen(method, getter, js_name = type)]
    pub fn kind(this: &Buffer) -> String;

    /// `buffer.cursorX`: the cursor's column.
    #[wasm_bindgen(method, getter, js_name = cursorX)]
    pub fn cursor_x(this: &Buffer) -> u32;

    /// `buffer.cursorY`: the cursor's row in the viewport.
    #[wasm_bindgen(method, getter, js_name = cursorY)]
    pub fn cursor_y(this: &Buffer) -> u32;

    /// `buffer.baseY`: the buffer line at the top of the viewport.
    #[wasm_bindgen(method, getter, js_name = baseY)]
    pub fn base_y(this: &Buffer) -> u32;

    /// `buffer.getLine(y)`; undefined past the end.
    #[wasm_bindgen(method, js_name = getLine)]
    pub fn get_line(this: &Buffer, y: u32) -> Option<BufferLine>;

    /// One line of a buffer.
    pub type BufferLine;

    /// `line.translateToString(trimRight, startColumn)`.
    #[wasm_bindgen(method, js_name = translateToString)]
    pub fn translate_to_string(this: &BufferLine, trim_right: bool, start: u32) -> String;

    /// What an `on…` registration returns.
    pub type Disposable;

    /// `disposable.dispose()`.
    #[wasm_bindgen(method)]
    pub fn dispose(this: &Disposable);

    /// The `{cols, rows}` object `onResize` passes.
    pub type ResizeEvent;

    /// Columns.
    #[wasm_bindgen(method, getter)]
    pub fn cols(this: &ResizeEvent) -> u32;

    /// Rows.
    #[wasm_bindgen(method, getter)]
    pub fn rows(this: &ResizeEvent) -> u32;
}

#[wasm_bindgen]
extern "C" {
    /// `FitAddon` from `@xterm/addon-fit`.
    #[wasm_bindgen(extends = Object, js_namespace = FitAddon, js_name = FitAddon)]
    #[derive(Clone)]
    pub type Fit;

    /// `new FitAddon.FitAddon()`.
    #[wasm_bindgen(constructor, catch)]
    pub fn new() -> Result<Fit, JsValue>;

    /// `fit.fit()`: resizes the terminal to its element.
    #[wasm_bindgen(method, catch)]
    pub fn fit(this: &Fit) -> Result<(), JsValue>;
}

#[wasm_bindgen]
extern "C" {
    /// `WebglAddon` from `@xterm/addon-webgl`.
    #[wasm_bindgen(extends = Object, js_namespace = WebglAddon, js_name = WebglAddon)]
    pub type Webgl;

    /// `new WebglAddon.WebglAddon()`.
    #[wasm_bindgen(constructor, catch)]
    pub fn new() -> Result<Webgl, JsValue>;

    /// `webgl.onContextLoss(listener)`.
    #[wasm_bindgen(method, js_name = onContextLoss)]
    pub fn on_context_loss(this: &Webgl, listener: &Function) -> Disposable;

    /// `webgl.dispose()`: the terminal falls back to its DOM renderer.
    #[wasm_bindgen(method)]
    pub fn dispose(this: &Webgl);
}

#[wasm_bindgen]
extern "C" {
    /// `WebLinksAddon` from `@xterm/addon-web-links` (URLs become links).
    #[wasm_bindgen(extends = Object, js_namespace = WebLinksAddon, js_name = WebLinksAddon)]
    pub type WebLinks;

    /// `new WebLinksAddon.WebLinksAddon()` with its default handler (opens a new tab without
    /// an opener).
    #[wasm_bindgen(constructor, catch)]
    pub fn new() -> Result<WebLinks, JsValue>;
}

#[wasm_bindgen]
extern "C" {
    /// `SearchAddon` from `@xterm/addon-search`.
    #[wasm_bindgen(extends = Object, js_namespace = SearchAddon, js_name = SearchAddon)]
    pub type Search;

    /// `new SearchAddon.SearchAddon()`.
    #[wasm_bindgen(constructor, catch)]
    pub fn new() -> Result<Search, JsValue>;

    /// `search.findNext(term, options)`: selects the next match; `false` when none.
    #[wasm_bindgen(method, js_name = findNext)]
    pub fn find_next(this: &Search, term: &str, options: &Object) -> bool;

    /// `search.findPrevious(term, options)`.
    #[wasm_bindgen(method, js_name = findPrevious)]
    pub fn find_previous(this: &Search, term: &str, options: &Object) -> bool;

    /// `search.clearDecorations()`.
    #[wasm_bindgen(method, js_name = clearDecorations)]
    pub fn clear_decorations(this: &Search);
}

#[wasm_bindgen]
extern "C" {
    /// `Unicode11Addon` from `@xterm/addon-unicode11` (emoji and CJK widths).
    #[wasm_bindgen(extends = Object, js_namespace = Unicode11Addon, js_name = Unicode11Addon)]
    pub type Unicode11;

    /// `new Unicode11Addon.Unicode11Addon()`.
    #[wasm_bindgen(constructor, catch)]
    pub fn new() -> Result<Unicode11, JsValue>;
}

#[wasm_bindgen]
extern "C" {
    /// `ClipboardAddon` from `@xterm/addon-clipboard` (OSC 52).
    #[wasm_bindgen(extends = Object, js_namespace = ClipboardAddon, js_name = ClipboardAddon)]
    pub type Clipboard;

    /// `new ClipboardAddon.ClipboardAddon(base64, provider)`; `base64` undefined picks the
    /// addon's own codec.
    #[wasm_bindgen(constructor, catch)]
    pub fn new(base64: &JsValue, provider: &Object) -> Result<Clipboard, JsValue>;
}
