//! The WebGL renderer and its fallback.
//!
//! The page holds at most one WebGL context for terminals: a thread-local flag records whether a
//! `WebglAddon` is loaded. WebGL is used only when the browser has a hardware WebGL2 context;
//! with none, or with a software rasteriser (SwiftShader, llvmpipe — slower than the DOM
//! renderer, and what headless browsers get), the terminal keeps xterm.js's DOM renderer. When the
//! context is lost later, the addon is disposed and xterm.js falls back to the DOM renderer.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::{JsError, Listener, sys};

thread_local! {
    /// Whether a terminal of this page holds a WebGL context.
    static CONTEXT_HELD: Cell<bool> = const { Cell::new(false) };
}

/// `UNMASKED_RENDERER_WEBGL` of the `WEBGL_debug_renderer_info` extension.
const UNMASKED_RENDERER_WEBGL: u32 = 0x9246;

/// A loaded WebGL addon.
pub(super) struct Held {
    addon: sys::Webgl,
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

/// Loads the WebGL addon into `terminal` when the browser has hardware WebGL2 and no other
/// terminal holds a context; otherwise the terminal keeps its DOM renderer.
pub(super) fn attach(
    terminal: &sys::Terminal,
    slot: &Rc<RefCell<Option<Held>>>,
    listeners: &mut Vec<Listener>,
) {
    if CONTEXT_HELD.with(Cell::get) || !hardware_webgl2() {
        return;
    }
    let addon = match sys::Webgl::new() {
        Ok(addon) => addon,
        Err(error) => {
            warn(&format!(
                "WebGL renderer unavailable: {}",
                JsError::from_js(&error)
            ));
            return;
        }
    };
    if let Err(error) = terminal.load_addon(addon.unchecked_ref()) {
        addon.dispose();
        warn(&format!(
            "WebGL renderer failed, using the DOM renderer: {}",
            JsError::from_js(&error)
        ));
        return;
    }
    CONTEXT_HELD.with(|held| held.set(true));
    let on_loss_slot = Rc::clone(slot);
    let on_loss = Closure::<dyn FnMut()>::new(move || {
        warn("WebGL context lost, using the DOM renderer");
        release(&on_loss_slot);
    });
    let registration = addon.on_context_loss(on_loss.as_ref().unchecked_ref());
    *slot.borrow_mut() = Some(Held { addon });
    listeners.push(Listener {
        registration: Some(registration),
        _callback: Box::new(on_loss),
    });
}

/// Disposes the WebGL addon in `slot`, if any, and frees the page's context slot.
pub(super) fn release(slot: &RefCell<Option<Held>>) {
    // Take it out first: `dispose` calls into JavaScript, which must not see a borrow.
    let held = slot.borrow_mut().take();
    if let Some(held) = held {
        held.addon.dispose();
        CONTEXT_HELD.with(|flag| flag.set(false));
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
