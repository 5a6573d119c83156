//! The form's tunnel endpoint field: a URL, or an AWS region (the region list, the default
//! cookie helper). Parsing the field is [`crate::endpoint`]'s, once; this module only adds what
//! the form shows.

use crate::endpoint::TunnelEndpoint;
pub use crate::endpoint::{aws_data_plane_url, parse_cookie_helper, parse_endpoint};

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

/// The default cookie helper: `<origin>/cookie`.
pub fn default_cookie_helper(page_origin: &str) -> String {
    format!("{}/cookie", page_origin.trim_end_matches('/'))
}

/// The region the endpoint field names, for the region list (`None`: a custom URL).
pub fn region_of_input(input: &str) -> Option<String> {
    match parse_endpoint(input, "") {
        Ok(TunnelEndpoint::AwsRegion(region)) => Some(region.as_str().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::is_region;

    #[test]
    fn offered_regions_are_region_names() {
        for region in REGIONS.iter().map(|(name, _)| name) {
            assert!(is_region(region), "{region}");
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
    fn default_cookie_helper_is_the_origin_s() {
        assert_eq!(
            default_cookie_helper("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/cookie"
        );
        assert_eq!(
            default_cookie_helper("https://x.example/"),
            "https://x.example/cookie"
        );
    }
}
