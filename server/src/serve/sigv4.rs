//! SigV4 verification for the control plane (`burrow serve --verify-sigv4`).
//!
//! With the flag, every control-plane request must carry an `Authorization` header signed
//! (`AWS4-HMAC-SHA256`) with the access key in the server's environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`). The signature is checked by signing the received request again
//! with `aws-sigv4`, AWS's own signer: its method, URI, the headers its `SignedHeaders` names
//! (with their received values), its body, and the date, region and service of its credential
//! scope. The two signatures are compared in constant time. Refusals are AWS's, HTTP 403:
//! - `MissingAuthenticationTokenException`: no `Authorization` header;
//! - `IncompleteSignatureException`: one that cannot be read (no credential scope, no
//!   `X-Amz-Date`, `host` not signed);
//! - `UnrecognizedClientException`: an access key id other than the server's;
//! - `InvalidSignatureException`: a signature that does not match, or a request dated more than
//!   [`MAX_SKEW`] away from the server's clock ("Signature expired" / "Signature not yet
//!   current", worded as AWS words them).
//!
//! Only the header form is accepted (the JSON API is never presigned). Session tokens are not
//! part of it: the server holds one long-term key.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::date_time::{DateTime, Format};
use axum::http::{HeaderMap, Method, Uri, header};
use subtle::ConstantTimeEq as _;

/// How far a request's `X-Amz-Date` may be from the server's clock, as at AWS.
pub(crate) const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// The only algorithm SigV4 (not SigV4a) signs with.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Why a request is refused: the AWS error type and its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub(crate) struct Refusal {
    /// AWS's error type, e.g. `InvalidSignatureException`.
    pub kind: &'static str,
    /// AWS's message.
    pub message: String,
}

impl Refusal {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    fn incomplete(message: impl Into<String>) -> Self {
        Self::new("IncompleteSignatureException", message)
    }

    fn mismatch() -> Self {
        Self::new(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        )
    }
}

/// The server's key, and the check of requests against it.
pub(crate) struct Verifier {
    access_key_id: String,
    identity: Identity,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for this key.
    pub(crate) fn new(access_key_id: &str, secret_access_key: &str) -> Self {
        let credentials = Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "burrow serve --verify-sigv4",
        );
        Self {
            access_key_id: access_key_id.to_owned(),
            identity: credentials.into(),
        }
    }

    /// A verifier for the key in `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    pub(crate) fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--verify-sigv4 needs the access key to check signatures against: set \
                         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the server's environment \
                         ({name} is not set)"
                    )
                })
        };
        let id = var("AWS_ACCESS_KEY_ID")?;
        let secret = zeroize::Zeroizing::new(var("AWS_SECRET_ACCESS_KEY")?);
        Ok(Self::new(id.trim(), secret.trim()))
    }

    /// Checks a request's signature at time `now`.
    pub(crate) fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), Refusal> {
        let Some(auth) = headers.get(header::AUTHORIZATION) else {
            return Err(Refusal::new(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ));
        };
        let auth = Authorization::parse(auth.to_str().unwrap_or_default())?;
        if auth.access_key_id != self.access_key_id {
            return Err(Refusal::new(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
        if !auth.signed_headers.contains(&"host") {
            return Err(Refusal::incomplete(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        let amz_date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Refusal::incomplete(
                    "Authorization header requires existence of a 'X-Amz-Date' header.",
                )
            })?;
        let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
            Refusal::incomplete(
                "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
            )
        })?;
        check_skew(amz_date, signed_at, now)?;

        // The headers the client signed, with the values received.
        let mut signed = Vec::new();
        for name in &auth.signed_headers {
            for value in headers.get_all(*name) {
                let value = value.to_str().map_err(|_| Refusal::mismatch())?;
                signed.push((*name, value));
            }
        }
        let uri = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let request = SignableRequest::new(
            method.as_str(),
            Cow::Borrowed(uri),
            signed.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|_| Refusal::mismatch())?;
        let mut settings = SigningSettings::default();
        // Only the headers the client signed go in, so none is left out again.
        settings.excluded_headers = None;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(auth.region)
            .name(auth.service)
            .time(signed_at)
            .settings(settings)
            .build()
            .map_err(|_| Refusal::mismatch())?
            .into();
        let expected = sign(request, &params).map_err(|_| Refusal::mismatch())?;
        let matches: bool = expected
            .signature()
            .as_bytes()
            .ct_eq(auth.signature.as_bytes())
            .into();
        if matches {
            Ok(())
        } else {
            Err(Refusal::mismatch())
        }
    }
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug)]
struct Authorization<'a> {
    access_key_id: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(value: &'a str) -> Result<Self, Refusal> {
        let Some(rest) = value.strip_prefix(ALGORITHM).filter(|r| r.starts_with(' ')) else {
            return Err(Refusal::incomplete(format!(
                "Unsupported AWS 'algorithm': the Authorization header must start with \
                 '{ALGORITHM}'"
            )));
        };
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let Some((key, value)) = part.trim().split_once('=') else {
                continue;
            };
            match key {
                "Credential" => credential = Some(value),
                "SignedHeaders" => signed_headers = Some(value),
                "Signature" => signature = Some(value),
                _ => {}
            }
        }
        let missing = [
            ("Credential", credential.is_none()),
            ("SignedHeaders", signed_headers.is_none()),
            ("Signature", signature.is_none()),
        ]
        .iter()
        .filter(|(_, missing)| *missing)
        .map(|(name, _)| format!("Authorization header requires '{name}' parameter."))
        .collect::<Vec<_>>();
        if !missing.is_empty() {
            return Err(Refusal::incomplete(missing.join(" ")));
        }
        let (credential, signed_headers, signature) = (
            credential.unwrap_or_default(),
            signed_headers.unwrap_or_default(),
            signature.unwrap_or_default(),
        );
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, _date, region, service, "aws4_request"] = scope[..] else {
            return Err(Refusal::incomplete(
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/aws4_request",
            ));
        };
        if [access_key_id, region, service]
            .iter()
            .any(|s| s.is_empty())
        {
            return Err(Refusal::incomplete(
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/aws4_request",
            ));
        }
        Ok(Self {
            access_key_id,
            region,
            service,
            signed_headers: signed_headers
                .split(';')
                .filter(|h| !h.is_empty())
                .collect(),
            signature,
        })
    }
}

/// `20130524T000000Z` (ISO 8601 basic format, UTC), whole seconds.
fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let b = value.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' || !digits(0..8) || !digits(9..15) {
        return None;
    }
    let extended = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &value[0..4],
        &value[4..6],
        &value[6..8],
        &value[9..11],
        &value[11..13],
        &value[13..15]
    );
    let time = DateTime::from_str(&extended, Format::DateTime).ok()?;
    SystemTime::try_from(time).ok()
}

/// `time` in the basic format of `X-Amz-Date`.
fn amz_date(time: SystemTime) -> String {
    DateTime::from(time)
        .fmt(Format::DateTime)
        .map(|s| {
            // `2013-05-24T00:00:00Z` (perhaps with fractions) to `20130524T000000Z`.
            let whole = s.split('.').next().unwrap_or(&s).trim_end_matches('Z');
            format!("{}Z", whole.replace(['-', ':'], ""))
        })
        .unwrap_or_default()
}

/// AWS's refusal of a request dated more than [`MAX_SKEW`] from `now`.
fn check_skew(shown: &str, signed_at: SystemTime, now: SystemTime) -> Result<(), Refusal> {
    let now_secs = DateTime::from(now).secs();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(now_secs).unwrap_or(0));
    let earliest = now.checked_sub(MAX_SKEW).unwrap_or(SystemTime::UNIX_EPOCH);
    let latest = now + MAX_SKEW;
    if signed_at < earliest {
        return Err(Refusal::new(
            "InvalidSignatureException",
            format!(
                "Signature expired: {shown} is now earlier than {} ({} - 5 min.)",
                amz_date(earliest),
                amz_date(now)
            ),
        ));
    }
    if signed_at > latest {
        return Err(Refusal::new(
            "InvalidSignatureException",
            format!(
                "Signature not yet current: {shown} is still later than {} ({} + 5 min.)",
                amz_date(latest),
                amz_date(now)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    const KEY_ID: &str = "AKIDBURROWUNIT000000";
    const SECRET: &str = "burrow-unit-test-secret";
    const BODY: &[u8] = br#"{"destinationConfig":{"services":["SSH"]}}"#;

    /// A control-plane request as a client signs it with aws-sigv4, at `at`.
    fn signed(key_id: &str, secret: &str, at: SystemTime, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("IoTSecuredTunneling.OpenTunnel"),
        );
        let identity: Identity = Credentials::new(key_id, secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("IoTSecuredTunneling")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .expect("signing params")
            .into();
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().expect("ascii")))
            .collect();
        let request = SignableRequest::new(
            "POST",
            "http://127.0.0.1:8080/",
            pairs.into_iter(),
            SignableBody::Bytes(body),
        )
        .expect("signable");
        let (instructions, _) = sign(request, &params).expect("sign").into_parts();
        let (added, _) = instructions.into_parts();
        let mut out = headers.clone();
        for h in added {
            out.insert(
                HeaderName::from_bytes(h.name().as_bytes()).expect("name"),
                HeaderValue::from_str(h.value()).expect("value"),
            );
        }
        out
    }

    fn verify(headers: &HeaderMap, body: &[u8], now: SystemTime) -> Result<(), Refusal> {
        Verifier::new(KEY_ID, SECRET).verify(
            &Method::POST,
            &Uri::from_static("/"),
            headers,
            body,
            now,
        )
    }

    fn kind(result: Result<(), Refusal>) -> &'static str {
        result.expect_err("refused").kind
    }

    #[test]
    fn a_request_signed_by_aws_sigv4_verifies() {
        let now = SystemTime::now();
        let headers = signed(KEY_ID, SECRET, now, BODY);
        assert_eq!(verify(&headers, BODY, now), Ok(()));
        // Within the allowed skew, either way.
        assert_eq!(
            verify(&headers, BODY, now + Duration::from_secs(240)),
            Ok(())
        );
        assert_eq!(
            verify(&headers, BODY, now - Duration::from_secs(240)),
            Ok(())
        );
    }

    #[test]
    fn a_tampered_body_or_header_or_wrong_secret_fails() {
        let now = SystemTime::now();
        let headers = signed(KEY_ID, SECRET, now, BODY);
        let other = br#"{"destinationConfig":{"services":["VNC"]}}"#;
        assert_eq!(
            kind(verify(&headers, other, now)),
            "InvalidSignatureException"
        );

        let mut changed = headers.clone();
        changed.insert(
            "x-amz-target",
            HeaderValue::from_static("IoTSecuredTunneling.CloseTunnel"),
        );
        assert_eq!(
            kind(verify(&changed, BODY, now)),
            "InvalidSignatureException"
        );

        let wrong = signed(KEY_ID, "another-secret", now, BODY);
        let refusal = verify(&wrong, BODY, now).expect_err("refused");
        assert_eq!(refusal.kind, "InvalidSignatureException");
        assert!(refusal.message.contains("does not match"), "{refusal}");

        // The signature itself, one digit changed.
        let mut forged = headers.clone();
        let auth = forged[header::AUTHORIZATION]
            .to_str()
            .expect("ascii")
            .to_owned();
        let last = auth.chars().last().expect("a signature");
        let flipped = format!(
            "{}{}",
            &auth[..auth.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        forged.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&flipped).expect("value"),
        );
        assert_eq!(
            kind(verify(&forged, BODY, now)),
            "InvalidSignatureException"
        );
    }

    #[test]
    fn a_request_dated_more_than_five_minutes_off_fails() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24
        let stale = signed(KEY_ID, SECRET, now - Duration::from_secs(301), BODY);
        let refusal = verify(&stale, BODY, now).expect_err("refused");
        assert_eq!(refusal.kind, "InvalidSignatureException");
        assert_eq!(
            refusal.message,
            "Signature expired: 20130523T235459Z is now earlier than 20130523T235500Z \
             (20130524T000000Z - 5 min.)"
        );
        let early = signed(KEY_ID, SECRET, now + Duration::from_secs(301), BODY);
        let refusal = verify(&early, BODY, now).expect_err("refused");
        assert_eq!(refusal.kind, "InvalidSignatureException");
        assert!(
            refusal
                .message
                .starts_with("Signature not yet current: 20130524T000501Z"),
            "{refusal}"
        );
    }

    #[test]
    fn an_unknown_key_id_is_unrecognized() {
        let now = SystemTime::now();
        let headers = signed("AKIDSOMEONEELSE00000", SECRET, now, BODY);
        let refusal = verify(&headers, BODY, now).expect_err("refused");
        assert_eq!(refusal.kind, "UnrecognizedClientException");
        assert_eq!(
            refusal.message,
            "The security token included in the request is invalid."
        );
    }

    #[test]
    fn an_unsigned_or_unreadable_request_is_refused() {
        let now = SystemTime::now();
        let mut headers = signed(KEY_ID, SECRET, now, BODY);
        let mut unsigned = headers.clone();
        unsigned.remove(header::AUTHORIZATION);
        let refusal = verify(&unsigned, BODY, now).expect_err("refused");
        assert_eq!(refusal.kind, "MissingAuthenticationTokenException");
        assert_eq!(refusal.message, "Missing Authentication Token");

        let mut no_date = headers.clone();
        no_date.remove("x-amz-date");
        assert_eq!(
            kind(verify(&no_date, BODY, now)),
            "IncompleteSignatureException"
        );

        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(
            kind(verify(&headers, BODY, now)),
            "IncompleteSignatureException"
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIDBURROWUNIT000000/x, SignedHeaders=host, Signature=00"),
        );
        assert_eq!(
            kind(verify(&headers, BODY, now)),
            "IncompleteSignatureException"
        );
    }

    #[test]
    fn amz_dates_round_trip() {
        let t = parse_amz_date("20130524T000000Z").expect("a date");
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600)
        );
        assert_eq!(amz_date(t), "20130524T000000Z");
        for bad in [
            "",
            "20130524T000000",
            "2013-05-24T00:00:00Z",
            "20131324T000000Z",
            "2013052AT000000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }
}
