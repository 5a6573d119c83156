//! The tunnel endpoint, parsed once: the form's text becomes a [`TunnelEndpoint`] whose parts
//! are checked ([`SiteBase`], [`Region`]), and everything after the form (the session, the
//! driver's URLs, the known-hosts label) uses those values without parsing them again.
//!
//! An AWS data-plane URL (`wss://data.tunneling.iot.{region}.amazonaws.com`) or a bare region
//! name means "AWS directly" (the token then goes in the WebSocket URL); anything else is a
//! same-site service reached through the cookie helper. A leaf module: it imports nothing of the
//! app.

/// Where the tunneling service is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelEndpoint {
    /// A service the page reaches same-site (the local service, or a relay in front of AWS):
    /// the token goes through the cookie helper.
    SameSite(SiteBase),
    /// AWS IoT Secure Tunneling directly in a region: the token goes in the WebSocket URL's
    /// `access-token` query parameter (a cookie cannot work there).
    AwsRegion(Region),
}

/// A same-site service's base URL, checked: http(s) or ws(s), a host, maybe a port and a path,
/// no credentials, query or fragment, no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteBase {
    secure: bool,
    /// `host[:port][/path]`.
    rest: String,
}

impl SiteBase {
    /// Checks `text` as a same-site base (as [`parse_endpoint`] does for a URL that is not AWS's).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let url = parse_url(text, &["http", "https", "ws", "wss"])?;
        let rest = text
            .split_once("://")
            .map_or("", |(_, rest)| rest)
            .trim_end_matches('/');
        Ok(Self {
            secure: url.scheme == "https" || url.scheme == "wss",
            rest: rest.to_owned(),
        })
    }

    /// The WebSocket base, e.g. `ws://127.0.0.1:8080` or `wss://relay.example/burrow`.
    pub fn ws_base(&self) -> String {
        format!("{}://{}", if self.secure { "wss" } else { "ws" }, self.rest)
    }

    /// The HTTP base, e.g. `http://127.0.0.1:8080`.
    pub fn http_base(&self) -> String {
        format!(
            "{}://{}",
            if self.secure { "https" } else { "http" },
            self.rest
        )
    }
}

/// An AWS region name, checked by [`is_region`] (e.g. `eu-west-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region(String);

impl Region {
    /// Checks `name`.
    pub fn parse(name: &str) -> Result<Self, String> {
        let name = name.trim();
        if is_region(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "“{name}” is not an AWS region name (like eu-west-1)"
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its data-plane WebSocket base.
    pub fn data_plane_url(&self) -> String {
        aws_data_plane_url(&self.0)
    }
}

const AWS_HOST_PREFIX: &str = "data.tunneling.iot.";
const AWS_HOST_SUFFIX: &str = ".amazonaws.com";

/// The data-plane URL of AWS IoT Secure Tunneling in `region` (shown in the form).
pub fn aws_data_plane_url(region: &str) -> String {
    format!("wss://{AWS_HOST_PREFIX}{region}{AWS_HOST_SUFFIX}")
}

/// Whether `name` looks like an AWS region: `xx-name-N` or `xx-gov-name-N`, lowercase.
pub fn is_region(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let (country, middle, number) = match parts.as_slice() {
        [country, direction, number] => (country, vec![*direction], number),
        [country, "gov", direction, number] => (country, vec!["gov", *direction], number),
        _ => return false,
    };
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_lowercase())
        && middle
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.len() <= 2
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// The region of an AWS data-plane host name, if it is one.
fn region_of_host(host: &str) -> Option<&str> {
    let region = host
        .strip_prefix(AWS_HOST_PREFIX)?
        .strip_suffix(AWS_HOST_SUFFIX)?;
    is_region(region).then_some(region)
}

/// A checked absolute URL (scheme and host; a path may follow), without credentials, query or
/// fragment.
struct Url<'a> {
    scheme: String,
    host: &'a str,
}

fn parse_url<'a>(text: &'a str, schemes: &[&str]) -> Result<Url<'a>, String> {
    let (scheme, after) = text.split_once("://").ok_or_else(|| {
        format!(
            "“{text}” is not a URL (it needs {}://…)",
            schemes.join("://, ")
        )
    })?;
    let scheme = scheme.to_ascii_lowercase();
    if !schemes.contains(&scheme.as_str()) {
        return Err(format!(
            "“{text}” must start with {}://",
            schemes.join("://, ")
        ));
    }
    let authority = after.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("“{text}” has no host"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("“{text}” contains spaces"));
    }
    if authority.contains('@') {
        return Err("the URL must not contain a user name or password".to_owned());
    }
    if text.contains('?') || text.contains('#') {
        return Err(format!("“{text}” must not have a query or fragment"));
    }
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':') {
                host
            } else {
                authority
            }
        });
    Ok(Url { scheme, host })
}

/// Reads the endpoint field. Empty means the page's own origin.
pub fn parse_endpoint(input: &str, page_origin: &str) -> Result<TunnelEndpoint, String> {
    let input = input.trim();
    if input.is_empty() {
        return SiteBase::parse(page_origin)
            .map(TunnelEndpoint::SameSite)
            .map_err(|why| format!("the page's own address: {why}"));
    }
    if is_region(input) {
        return Ok(TunnelEndpoint::AwsRegion(Region(input.to_owned())));
    }
    let url = parse_url(input, &["http", "https", "ws", "wss"])
        .map_err(|why| format!("the tunnel endpoint: {why}"))?;
    if let Some(region) = region_of_host(&url.host.to_ascii_lowercase()) {
        if url.scheme != "wss" && url.scheme != "https" {
            return Err("the AWS tunnel endpoint must use wss://".to_owned());
        }
        return Ok(TunnelEndpoint::AwsRegion(Region(region.to_owned())));
    }
    SiteBase::parse(input)
        .map(TunnelEndpoint::SameSite)
        .map_err(|why| format!("the tunnel endpoint: {why}"))
}

/// Reads the cookie helper field: an absolute http(s) URL.
pub fn parse_cookie_helper(input: &str) -> Result<String, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err("the cookie helper URL is empty".to_owned());
    }
    parse_url(input, &["http", "https"]).map_err(|why| format!("the cookie helper: {why}"))?;
    Ok(input.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "http://127.0.0.1:8080";

    fn same_site(url: &str) -> Result<TunnelEndpoint, String> {
        Ok(TunnelEndpoint::SameSite(SiteBase::parse(url).expect(url)))
    }

    fn aws(region: &str) -> Result<TunnelEndpoint, String> {
        Ok(TunnelEndpoint::AwsRegion(
            Region::parse(region).expect(region),
        ))
    }

    #[test]
    fn empty_means_the_page_origin() {
        assert_eq!(parse_endpoint("", ORIGIN), same_site(ORIGIN));
        assert_eq!(
            parse_endpoint("   ", "https://burrow.example/"),
            same_site("https://burrow.example")
        );
    }

    #[test]
    fn same_site_bases_keep_their_path_without_trailing_slash() {
        let base = |input: &str| match parse_endpoint(input, ORIGIN) {
            Ok(TunnelEndpoint::SameSite(base)) => (base.ws_base(), base.http_base()),
            other => panic!("{input}: {other:?}"),
        };
        assert_eq!(
            base("http://127.0.0.1:9000/"),
            ("ws://127.0.0.1:9000".into(), "http://127.0.0.1:9000".into())
        );
        assert_eq!(
            base("wss://relay.example/burrow/"),
            (
                "wss://relay.example/burrow".into(),
                "https://relay.example/burrow".into()
            )
        );
        assert_eq!(base("ws://[::1]:8080").0, "ws://[::1]:8080");
        assert_eq!(base("WS://h:1").0, "ws://h:1");
        assert_eq!(base("HTTPS://h").1, "https://h");
    }

    #[test]
    fn aws_urls_and_region_names_mean_aws_directly() {
        assert_eq!(
            parse_endpoint("wss://data.tunneling.iot.eu-west-1.amazonaws.com", ORIGIN),
            aws("eu-west-1")
        );
        assert_eq!(
            parse_endpoint(
                "wss://DATA.tunneling.iot.us-east-1.amazonaws.com:443/",
                ORIGIN
            ),
            aws("us-east-1")
        );
        assert_eq!(
            parse_endpoint("us-gov-west-1", ORIGIN),
            aws("us-gov-west-1")
        );
        assert_eq!(
            parse_endpoint(&aws_data_plane_url("ap-south-1"), ORIGIN),
            aws("ap-south-1")
        );
        let Ok(TunnelEndpoint::AwsRegion(region)) = parse_endpoint("eu-west-1", ORIGIN) else {
            panic!("a region");
        };
        assert_eq!(
            region.data_plane_url(),
            "wss://data.tunneling.iot.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn aws_requires_tls() {
        assert!(parse_endpoint("ws://data.tunneling.iot.eu-west-1.amazonaws.com", ORIGIN).is_err());
    }

    #[test]
    fn bad_endpoints_are_explained() {
        for input in [
            "127.0.0.1:8080",
            "ftp://example.com",
            "http://",
            "http:///x",
            "http://user:pw@example.com",
            "http://example.com/?access-token=x",
            "http://exa mple.com",
        ] {
            let error = parse_endpoint(input, ORIGIN).expect_err(input);
            assert!(error.starts_with("the tunnel endpoint"), "{input}: {error}");
        }
        assert!(parse_endpoint("", "").is_err());
    }

    #[test]
    fn region_names() {
        for region in ["eu-west-1", "us-gov-east-1", "ap-northeast-2"] {
            assert!(is_region(region), "{region}");
            assert!(Region::parse(region).is_ok());
        }
        for bad in [
            "",
            "us",
            "us-east",
            "US-EAST-1",
            "us-east-x",
            "usa-east-1",
            "us--1",
            "us-east-123",
            "eu west",
            "x/../y",
        ] {
            assert!(!is_region(bad), "{bad}");
            assert!(Region::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cookie_helper() {
        assert_eq!(
            parse_cookie_helper(" https://x.example/cookie "),
            Ok("https://x.example/cookie".into())
        );
        assert!(parse_cookie_helper("").is_err());
        assert!(parse_cookie_helper("wss://x.example/cookie").is_err());
    }
}
