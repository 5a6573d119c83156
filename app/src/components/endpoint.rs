//! The form's tunnel endpoint field: a URL, or an AWS region.
//!
//! The field holds text; [`parse_endpoint`] turns it into a [`TunnelEndpoint`]. An AWS data-plane
//! URL (`wss://data.tunneling.iot.{region}.amazonaws.com`) or a bare region name means
//! "AWS directly" (the token then goes in the WebSocket URL); anything else is a same-site
//! service reached through the cookie helper. This module only parses and formats: the session
//! machinery builds the WebSocket URL.

use crate::session::TunnelEndpoint;

/// Regions offered in the form's region list (AWS IoT Secure Tunneling in the `aws` and
/// `aws-us-gov` partitions). Others can still be typed as a URL or a region name.
pub const REGIONS: &[(&str, &str)] = &[
    ("us-east-1", "US East (N. Virginia)"),
    ("us-east-2", "US East (Ohio)"),
    ("us-west-1", "US West (N. California)"),
    ("us-west-2", "US West (Oregon)"),
    ("ca-central-1", "Canada (Central)"),
    ("sa-east-1", "South America (São Paulo)"),
    ("eu-west-1", "Europe (Ireland)"),
    ("eu-west-2", "Europe (London)"),
    ("eu-west-3", "Europe (Paris)"),
    ("eu-central-1", "Europe (Frankfurt)"),
    ("eu-north-1", "Europe (Stockholm)"),
    ("eu-south-1", "Europe (Milan)"),
    ("me-south-1", "Middle East (Bahrain)"),
    ("me-central-1", "Middle East (UAE)"),
    ("ap-east-1", "Asia Pacific (Hong Kong)"),
    ("ap-south-1", "Asia Pacific (Mumbai)"),
    ("ap-northeast-1", "Asia Pacific (Tokyo)"),
    ("ap-northeast-2", "Asia Pacific (Seoul)"),
    ("ap-southeast-1", "Asia Pacific (Singapore)"),
    ("ap-southeast-2", "Asia Pacific (Sydney)"),
    ("us-gov-west-1", "AWS GovCloud (US-West)"),
    ("us-gov-east-1", "AWS GovCloud (US-East)"),
];

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

/// The default cookie helper: `<origin>/cookie`.
pub fn default_cookie_helper(page_origin: &str) -> String {
    format!("{}/cookie", page_origin.trim_end_matches('/'))
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
        return Ok(TunnelEndpoint::SameSite(
            page_origin.trim_end_matches('/').to_owned(),
        ));
    }
    if is_region(input) {
        return Ok(TunnelEndpoint::AwsRegion(input.to_owned()));
    }
    let url = parse_url(input, &["http", "https", "ws", "wss"])
        .map_err(|why| format!("the tunnel endpoint: {why}"))?;
    if let Some(region) = region_of_host(&url.host.to_ascii_lowercase()) {
        if url.scheme != "wss" && url.scheme != "https" {
            return Err("the AWS tunnel endpoint must use wss://".to_owned());
        }
        return Ok(TunnelEndpoint::AwsRegion(region.to_owned()));
    }
    Ok(TunnelEndpoint::SameSite(
        input.trim_end_matches('/').to_owned(),
    ))
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

/// The region the endpoint field names, for the region list (`None`: a custom URL).
pub fn region_of_input(input: &str) -> Option<String> {
    match parse_endpoint(input, "") {
        Ok(TunnelEndpoint::AwsRegion(region)) => Some(region),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "http://127.0.0.1:8080";

    fn same_site(url: &str) -> Result<TunnelEndpoint, String> {
        Ok(TunnelEndpoint::SameSite(url.to_owned()))
    }

    fn aws(region: &str) -> Result<TunnelEndpoint, String> {
        Ok(TunnelEndpoint::AwsRegion(region.to_owned()))
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
    fn same_site_urls_keep_their_path_without_trailing_slash() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:9000/", ORIGIN),
            same_site("http://127.0.0.1:9000")
        );
        assert_eq!(
            parse_endpoint("wss://relay.example/burrow/", ORIGIN),
            same_site("wss://relay.example/burrow")
        );
        assert_eq!(
            parse_endpoint("ws://[::1]:8080", ORIGIN),
            same_site("ws://[::1]:8080")
        );
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
            "http://user:pw@example.com",
            "http://example.com/?access-token=x",
            "http://exa mple.com",
        ] {
            let error = parse_endpoint(input, ORIGIN).expect_err(input);
            assert!(error.starts_with("the tunnel endpoint"), "{input}: {error}");
        }
    }

    #[test]
    fn region_names() {
        for region in REGIONS.iter().map(|(name, _)| name) {
            assert!(is_region(region), "{region}");
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
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn region_of_input_feeds_the_region_list() {
        assert_eq!(
            region_of_input("wss://data.tunneling.iot.eu-north-1.amazonaws.com"),
            Some("eu-north-1".into())
        );
        assert_eq!(region_of_input("http://127.0.0.1:8080"), None);
        assert_eq!(region_of_input(""), None);
    }

    #[test]
    fn cookie_helper() {
        assert_eq!(
            default_cookie_helper("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/cookie"
        );
        assert_eq!(
            default_cookie_helper("https://x.example/"),
            "https://x.example/cookie"
        );
        assert_eq!(
            parse_cookie_helper(" https://x.example/cookie "),
            Ok("https://x.example/cookie".into())
        );
        assert!(parse_cookie_helper("").is_err());
        assert!(parse_cookie_helper("wss://x.example/cookie").is_err());
    }
}
