//! The WebGL renderer and its fallback.
//!
//! The page holds at most one WebGL context for terminals: a thread-local flag records whether a
//! `WebglAddon` is loaded (or loading). WebGL is used only when the browser has a hardware WebGL2
//! context; with none, or with a software rasteriser (SwiftShader, llvmpipe — slower than the DOM
//! renderer, and what headless browsers get), the terminal keeps xterm.js's DOM renderer. When the
//! context is lost later, the addon is disposed and xterm.js falls back to the DOM renderer.
//!
//! The addon's script (240 KB, 66 KB gzip) is not part of the page: Trunk copies it next to the
//! app as [`SCRIPT`], and it is fetched ([`script`]) only once the probe found hardware WebGL2, so browsers
//! that would never use it never download it. Until it has loaded the terminal draws with the
//! DOM renderer; a script that fails to load leaves it there, with a console warning.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::{JsError, script, sys};

thread_local! {
    /// Whether a terminal of this page holds (or is loading) a WebGL context.
    static CONTEXT_HELD: Cell<bool> = const { Cell::new(false) };
}

/// Claims (`true`) or frees (`false`) the page's one WebGL context slot.
fn hold_context(held: bool) {
    CONTEXT_HELD.with(|flag| flag.set(held));
}

/// The addon's script, beside the app's own files (see index.html).
const SCRIPT: script::Script = script::Script {
    file: "addon-webgl.js",
    global: "WebglAddon",
};

/// `UNMASKED_RENDERER_WEBGL` of the `WEBGL_debug_renderer_info` extension.
const UNMASKED_RENDERER_WEBGL: u32 = 0x9246;

/// Told whether WebGL draws the terminal, each time that changes.
type ChangeListener = Box<dyn Fn(bool)>;

/// One terminal's WebGL state: the addon once loaded, and who wants to hear when it comes or goes
/// (it loads some time after the terminal opened, and a lost context takes it away).
#[derive(Default)]
pub(super) struct Slot {
    held: RefCell<Option<Held>>,
    /// Whether the terminal still wants WebGL (a hidden tab gives it up, even while loading).
    wanted: Cell<bool>,
    /// Whether its script or addon is being loaded for this terminal.
    loading: Cell<bool>,
    on_change: RefCell<Option<ChangeListener>>,
}

impl Slot {
    /// Whether the terminal draws with WebGL now.
    pub(super) fn active(&self) -> bool {
        self.held.borrow().is_some()
    }

    /// Calls `callback(active)` whenever WebGL starts or stops drawing the terminal.
    pub(super) fn on_change(&self, callback: ChangeListener) {
        *self.on_change.borrow_mut() = Some(callback);
    }

    /// Stops telling anyone (the terminal is going away).
    pub(super) fn forget_listener(&self) {
        self.on_change.borrow_mut().take();
    }

    fn notify(&self, active: bool) {
        if let Some(callback) = self.on_change.borrow().as_ref() {
            callback(active);
        }
    }
}

/// A loaded WebGL addon with its context-loss listener.
pub(super) struct Held {
    addon: sys::Webgl,
    on_loss: sys::Disposable,
    _on_loss_callback: Closure<dyn FnMut()>,
}

/// Whether a WebGL renderer name is a software rasteriser (slower than the DOM renderer).
pub fn is_software_renderer(renderer: &str) -> bool {
    let renderer = renderer.to_ascii_lowercase();
    [
        "swiftshader",
        "llvmpipe",
        "softpipe",
        "software",
        "basic render driver",
    ]
    .iter()
    .any(|name| renderer.contains(name))
}

/// Whether this browser offers a hardware WebGL2 context. The probe's context is released at
/// once.
fn hardware_webgl2() -> bool {
    let Some(document) = web_sys::window().and_then(|window| window.document()) else {
        return false;
    };
    let Ok(canvas) = document.create_element("canvas") else {
        return false;
    };
    let Ok(canvas) = canvas.dyn_into::<web_sys::HtmlCanvasElement>() else {
        return false;
    };
    let Ok(Some(context)) = canvas.get_context("webgl2") else {
        return false;
    };
    let Ok(context) = context.dyn_into::<web_sys::WebGl2RenderingContext>() else {
        return false;
    };
    // Without the debug extension the renderer is unknown: assume hardware.
    let software = match context.get_extension("WEBGL_debug_renderer_info") {
        Ok(Some(_)) => context
            .get_parameter(UNMASKED_RENDERER_WEBGL)
            .ok()
            .and_then(|name| name.as_string())
            .is_some_and(|name| is_software_renderer(&name)),
        _ => false,
    };
    if let Ok(Some(lose)) = context.get_extension("WEBGL_lose_context") {
        lose.unchecked_into::<web_sys::WebglLoseContext>()
            .lose_context();
    }
    !software
}

/// Starts using WebGL for `terminal` when the browser has hardware WebGL2 and no other terminal
/// holds a context: fetches the addon's script if the page does not have it yet, then loads the
/// addon, unless the terminal is gone by then (`slot` dropped). Otherwise, or when anything
/// fails, the terminal keeps its DOM renderer.
pub(super) fn attach(terminal: &sys::Terminal, slot: &Rc<Slot>) {
    if slot.loading.get() {
        // Shown again before its addon loaded: it still wants it.
        slot.wanted.set(true);
        return;
    }
    if CONTEXT_HELD.with(Cell::get) || !hardware_webgl2() {
        return;
    }
    // Reserved now, so a second terminal opened meanwhile does not load it twice.
    hold_context(true);
    slot.wanted.set(true);
    slot.loading.set(true);
    let terminal = terminal.clone();
    let slot: Weak<Slot> = Rc::downgrade(slot);
    wasm_bindgen_futures::spawn_local(async move {
        let loaded = script::load(SCRIPT).await;
        if let Some(slot) = slot.upgrade() {
            slot.loading.set(false);
        }
        if let Err(error) = loaded {
            warn(&format!(
                "WebGL renderer unavailable, using the DOM renderer: {error}"
            ));
            hold_context(false);
            return;
        }
        match slot.upgrade() {
            Some(slot) if slot.wanted.get() => load_addon(&terminal, &slot),
            // The terminal was closed or hidden while the script loaded.
            _ => hold_context(false),
        }
    });
}

/// Loads the addon into `terminal` and keeps it in `slot`.
fn load_addon(terminal: &sys::Terminal, slot: &Rc<Slot>) {
    let addon = match sys::Webgl::new() {
        Ok(addon) => addon,
        Err(error) => {
            warn(&format!(
                "WebGL renderer unavailable: {}",
                JsError::from_js(&error)
            ));
            hold_context(false);
            return;
        }
    };
    if let Err(error) = terminal.load_addon(addon.unchecked_ref()) {
        addon.dispose();
        hold_context(false);
        warn(&format!(
            "WebGL renderer failed, using the DOM renderer: {}",
            JsError::from_js(&error)
        ));
        return;
    }
    let on_loss_slot = Rc::downgrade(slot);
    let on_loss = Closure::<dyn FnMut()>::new(move || {
        warn("WebGL context lost, using the DOM renderer");
        if let Some(slot) = on_loss_slot.upgrade() {
            release(&slot);
        }
    });
    let registration = addon.on_context_loss(on_loss.as_ref().unchecked_ref());
    *slot.held.borrow_mut() = Some(Held {
        addon,
        on_loss: registration,
        _on_loss_callback: on_loss,
    });
    slot.notify(true);
}

/// Disposes the WebGL addon in `slot`, if any, and frees the page's context slot.
pub(super) fn release(slot: &Slot) {
    slot.wanted.set(false);
    // Take it out first: `dispose` calls into JavaScript, which must not see a borrow.
    let held = slot.held.borrow_mut().take();
    if let Some(held) = held {
        held.on_loss.dispose();
        held.addon.dispose();
        hold_context(false);
        slot.notify(false);
    }
}

fn warn(message: &str) {
    web_sys::console::warn_1(&JsValue::from_str(message));
}

#[cfg(test)]
mod tests {
    use super::is_software_renderer;

    #[test]
    fn software_rasterisers_are_recognised() {
        for name in [
            "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), SwiftShader driver)",
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            "Google SwiftShader",
            "Microsoft Basic Render Driver",
        ] {
            assert!(is_software_renderer(name), "{name}");
        }
    }

    #[test]
    fn hardware_renderers_are_not_software() {
        for name in [
            "ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 Direct3D11 vs_5_0 ps_5_0, D3D11)",
            "Apple M2",
            "Mesa Intel(R) UHD Graphics 620 (KBL GT2)",
        ] {
            assert!(!is_software_renderer(name), "{name}");
        }
    }
}
