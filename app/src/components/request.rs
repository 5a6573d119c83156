//! From the form's fields to a [`ConnectRequest`] (Token mode) or a [`DevicePlan`] (Device
//! mode): trimming, defaults and the checks that can be made before connecting, each failing
//! with words that say what to fix.
//!
//! Plain Rust (tested natively). Secrets arrive and leave in [`Zeroizing`] strings.

use zeroize::Zeroizing;

use super::endpoint::{parse_cookie_helper, parse_endpoint};
use crate::session::{ConnectRequest, Credential, Format, SessionError, TunnelEndpoint};
use crate::tunnel_api::{check_thing_name, parse_services};

/// The form's two ways in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// By the device's thing name, through the service's tunnel API.
    Device,
    /// With a source token made elsewhere.
    #[default]
    Token,
}

/// What Device mode opens: checked before any call, so a typo costs no tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlan {
    /// The thing name.
    pub thing: String,
    /// The services to open.
    pub services: Vec<String>,
}

/// Longest private key file the form accepts (real keys are a few KiB).
pub const MAX_KEY_LEN: usize = 64 * 1024;

/// The form's fields as typed.
#[derive(Default)]
pub struct FormValues {
    /// Tunnel endpoint: URL, AWS data-plane URL or region; empty for the page's origin.
    pub endpoint: String,
    /// Cookie helper URL.
    pub cookie_helper: String,
    /// Source access token.
    pub token: Zeroizing<String>,
    /// Service id; empty for "the tunnel's only service".
    pub service: String,
    /// Token mode's device name (the thing its host key is remembered under); may be empty.
    pub device_name: String,
    /// Device mode's thing name.
    pub thing: String,
    /// Device mode's services (`SSH` when empty).
    pub services: String,
    /// `V1`, `V2` or `V3`.
    pub format: String,
    /// SSH user name.
    pub username: String,
    /// Password (may be empty: a key, or the device's keyboard-interactive prompts, instead).
    pub password: Zeroizing<String>,
    /// Private key text (may be empty).
    pub private_key: Zeroizing<String>,
    /// The key's passphrase, if encrypted.
    pub passphrase: Zeroizing<String>,
}

/// Reads the message-format choice.
pub fn parse_format(value: &str) -> Option<Format> {
    match value {
        "V1" => Some(Format::V1),
        "V2" => Some(Format::V2),
        "V3" | "" => Some(Format::V3),
        _ => None,
    }
}

fn invalid(what: impl Into<String>) -> SessionError {
    SessionError::Input(what.into())
}

/// The user name as the session wants it.
pub fn check_username(username: &str) -> Result<&str, SessionError> {
    let username = username.trim();
    if username.is_empty() {
        return Err(invalid("enter the SSH user name"));
    }
    if username
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid("the user name must not contain spaces"));
    }
    Ok(username)
}

/// Device mode's checks: thing name, services and user name, before the tunnel is opened.
pub fn check_device(values: &FormValues) -> Result<DevicePlan, SessionError> {
    let thing = values.thing.trim();
    check_thing_name(thing).map_err(invalid)?;
    let services = parse_services(&values.services).map_err(invalid)?;
    check_username(&values.username)?;
    parse_format(values.format.trim())
        .ok_or_else(|| invalid(format!("unknown message format “{}”", values.format)))?;
    Ok(DevicePlan {
        thing: thing.to_owned(),
        services,
    })
}

/// Device mode's form, turned into Token mode's with the token the tunnel API gave: the page's
/// own service (through its cookie helper), the device's name, its first service.
pub fn device_values(
    mut values: FormValues,
    plan: &DevicePlan,
    token: Zeroizing<String>,
    cookie_helper: String,
) -> FormValues {
    values.endpoint = String::new();
    values.cookie_helper = cookie_helper;
    values.token = token;
    values.device_name = plan.thing.clone();
    values.service = plan.services.first().cloned().unwrap_or_default();
    values
}

/// Builds the request for a terminal of `cols` × `rows`; `page_origin` is the default endpoint.
pub fn build_request(
    values: FormValues,
    page_origin: &str,
    cols: u32,
    rows: u32,
) -> Result<ConnectRequest, SessionError> {
    let endpoint = parse_endpoint(&values.endpoint, page_origin).map_err(invalid)?;
    let cookie_helper = match endpoint {
        TunnelEndpoint::SameSite(_) => {
            parse_cookie_helper(&values.cookie_helper).map_err(invalid)?
        }
        // Not used when the token goes in the WebSocket URL.
        TunnelEndpoint::AwsRegion(_) => values.cookie_helper.trim().to_owned(),
    };
    let token = Zeroizing::new(values.token.trim().to_owned());
    if token.is_empty() {
        return Err(invalid("paste the source access token"));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "the access token must not contain spaces or line breaks",
        ));
    }
    let service = values.service.trim();
    if service.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("the service id must not contain spaces"));
    }
    let format = parse_format(values.format.trim())
        .ok_or_else(|| invalid(format!("unknown message format “{}”", values.format)))?;
    let username = check_username(&values.username)?;
    let device = values.device_name.trim();
    if !device.is_empty() {
        check_thing_name(device)
            .map_err(|why| invalid(why.replace("thing name", "device name")))?;
    }
    let credential = if !values.private_key.trim().is_empty() {
        if values.private_key.len() > MAX_KEY_LEN {
            return Err(invalid("the private key is too large to be a key file"));
        }
        let passphrase = (!values.passphrase.is_empty()).then(|| values.passphrase.clone());
        Credential::PrivateKey {
            text: values.private_key.clone(),
            passphrase,
        }
    } else if !values.password.is_empty() {
        Credential::Password(values.password.clone())
    } else {
        // The device may ask for what it wants (keyboard-interactive); its prompts show in
        // the page.
        Credential::None
    };
    Ok(ConnectRequest {
        endpoint,
        cookie_helper,
        token,
        service_id: (!service.is_empty()).then(|| service.to_owned()),
        device: (!device.is_empty()).then(|| device.to_owned()),
        format,
        username: username.to_owned(),
        credential,
        cols: cols.max(1),
        rows: rows.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "http://127.0.0.1:8080";

    fn values() -> FormValues {
        FormValues {
            endpoint: String::new(),
            cookie_helper: format!("{ORIGIN}/cookie"),
            token: Zeroizing::new(" AQGAAXi-token \n".into()),
            service: String::new(),
            format: "V3".into(),
            username: " pi ".into(),
            password: Zeroizing::new("hunter2".into()),
            ..FormValues::default()
        }
    }

    fn error_of(values: FormValues) -> String {
        match build_request(values, ORIGIN, 80, 24) {
            Ok(_) => panic!("the request should have been refused"),
            Err(error) => error.user_message(),
        }
    }

    #[test]
    fn a_complete_form_with_password() {
        let request = build_request(values(), ORIGIN, 120, 40).expect("valid form");
        assert_eq!(
            request.endpoint,
            TunnelEndpoint::SameSite(crate::endpoint::SiteBase::parse(ORIGIN).expect("valid"))
        );
        assert_eq!(request.cookie_helper, "http://127.0.0.1:8080/cookie");
        assert_eq!(request.token.as_str(), "AQGAAXi-token");
        assert_eq!(request.service_id, None);
        assert_eq!(request.format, Format::V3);
        assert_eq!(request.username, "pi");
        assert!(matches!(&request.credential, Credential::Password(p) if p.as_str() == "hunter2"));
        assert_eq!((request.cols, request.rows), (120, 40));
    }

    #[test]
    fn neither_password_nor_key_leaves_it_to_the_device_prompts() {
        let mut form = values();
        form.password = Zeroizing::new(String::new());
        let request = build_request(form, ORIGIN, 80, 24).expect("valid form");
        assert!(matches!(request.credential, Credential::None));
    }

    #[test]
    fn a_private_key_wins_over_a_password() {
        let mut form = values();
        form.private_key = Zeroizing::new("-----BEGIN OPENSSH PRIVATE KEY-----\n…".into());
        form.passphrase = Zeroizing::new("secret".into());
        form.service = " SSH ".into();
        form.format = "V1".into();
        let request = build_request(form, ORIGIN, 0, 0).expect("valid form");
        match &request.credential {
            Credential::PrivateKey { text, passphrase } => {
                assert!(text.starts_with("-----BEGIN OPENSSH"));
                assert_eq!(passphrase.as_deref().map(String::as_str), Some("secret"));
            }
            _ => panic!("expected the key"),
        }
        assert_eq!(request.service_id.as_deref(), Some("SSH"));
        assert_eq!(request.format, Format::V1);
        assert_eq!((request.cols, request.rows), (1, 1));
    }

    #[test]
    fn an_unencrypted_key_has_no_passphrase() {
        let mut form = values();
        form.password = Zeroizing::new(String::new());
        form.private_key = Zeroizing::new("key".into());
        let request = build_request(form, ORIGIN, 80, 24).expect("valid form");
        assert!(matches!(
            request.credential,
            Credential::PrivateKey {
                passphrase: None,
                ..
            }
        ));
    }

    #[test]
    fn aws_region_needs_no_cookie_helper() {
        let mut form = values();
        form.endpoint = "wss://data.tunneling.iot.eu-west-1.amazonaws.com".into();
        form.cookie_helper = String::new();
        let request = build_request(form, ORIGIN, 80, 24).expect("valid form");
        assert_eq!(
            request.endpoint,
            TunnelEndpoint::AwsRegion(crate::endpoint::Region::parse("eu-west-1").expect("valid"))
        );
    }

    #[test]
    fn each_mistake_is_named() {
        /// A mistake made in the form, and the words that must name it.
        type Mistake = (fn(&mut FormValues), &'static str);
        let cases: Vec<Mistake> = vec![
            (
                |f| f.token = Zeroizing::new("  ".into()),
                "paste the source access token",
            ),
            (
                |f| f.token = Zeroizing::new("ab cd".into()),
                "must not contain spaces or line breaks",
            ),
            (|f| f.username = String::new(), "enter the SSH user name"),
            (
                |f| f.username = "a b".into(),
                "user name must not contain spaces",
            ),
            (|f| f.format = "V9".into(), "unknown message format"),
            (|f| f.endpoint = "example.com".into(), "the tunnel endpoint"),
            (|f| f.cookie_helper = "cookie".into(), "the cookie helper"),
            (
                |f| f.service = "S S".into(),
                "service id must not contain spaces",
            ),
            (
                |f| f.private_key = Zeroizing::new("k".repeat(MAX_KEY_LEN + 1)),
                "too large",
            ),
            (
                |f| f.device_name = "pump 7".into(),
                "the device name may hold only",
            ),
        ];
        for (mistake, expected) in cases {
            let mut form = values();
            mistake(&mut form);
            let message = error_of(form);
            assert!(message.starts_with("Please check the form: "), "{message}");
            assert!(
                message.contains(expected),
                "{message:?} should mention {expected:?}"
            );
        }
    }

    #[test]
    fn a_device_name_names_the_host_key_s_device() {
        let mut form = values();
        form.device_name = " pump-7 ".into();
        let request = build_request(form, ORIGIN, 80, 24).expect("valid form");
        assert_eq!(request.device.as_deref(), Some("pump-7"));
        assert_eq!(
            build_request(values(), ORIGIN, 80, 24)
                .expect("valid form")
                .device,
            None
        );
    }

    #[test]
    fn device_mode_checks_then_becomes_a_token_request() {
        let mut form = values();
        form.token = Zeroizing::new(String::new());
        form.endpoint = "eu-west-1".into();
        form.thing = " pump-7 ".into();
        let plan = check_device(&form).expect("a device plan");
        assert_eq!(
            plan,
            DevicePlan {
                thing: "pump-7".into(),
                services: vec!["SSH".into()]
            }
        );
        let form = device_values(
            form,
            &plan,
            Zeroizing::new("tok".into()),
            format!("{ORIGIN}/cookie"),
        );
        let request = build_request(form, ORIGIN, 80, 24).expect("valid request");
        assert_eq!(
            request.endpoint,
            TunnelEndpoint::SameSite(crate::endpoint::SiteBase::parse(ORIGIN).expect("valid"))
        );
        assert_eq!(request.token.as_str(), "tok");
        assert_eq!(request.device.as_deref(), Some("pump-7"));
        assert_eq!(request.service_id.as_deref(), Some("SSH"));

        /// A mistake in Device mode's form, and the words that must name it.
        type Mistake = (fn(&mut FormValues), &'static str);
        let cases: [Mistake; 4] = [
            (|f| f.thing = String::new(), "enter the device's thing name"),
            (
                |f| f.thing = "pump/7".into(),
                "the thing name may hold only",
            ),
            (|f| f.services = "S SH/".into(), "service id"),
            (|f| f.username = String::new(), "enter the SSH user name"),
        ];
        for (mistake, words) in cases {
            let mut form = values();
            form.thing = "pump-7".into();
            mistake(&mut form);
            let message = check_device(&form).expect_err("refused").user_message();
            assert!(message.contains(words), "{message:?} should say {words:?}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(parse_format("V1"), Some(Format::V1));
        assert_eq!(parse_format("V2"), Some(Format::V2));
        assert_eq!(parse_format("V3"), Some(Format::V3));
        assert_eq!(parse_format(""), Some(Format::V3));
        assert_eq!(parse_format("v3"), None);
    }
}
