//! The real `aws` CLI, as the tests run it against `burrow serve`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// `aws iotsecuretunneling ARGS… --endpoint-url http://ADDR --region REGION --output json`, signed
/// with this key and cut off from the machine's own AWS setup: no profiles, session tokens,
/// roles, instance metadata, pager or retries. `config` is the CLI's config file (`/dev/null`
/// for none). Run it with [`super::run`].
pub fn cli(
    addr: SocketAddr,
    region: &str,
    (key_id, secret): (&str, &str),
    config: &Path,
    args: &[&str],
) -> Command {
    let mut cmd = Command::new("aws");
    cmd.arg("iotsecuretunneling")
        .args(args)
        .arg("--endpoint-url")
        .arg(format!("http://{addr}"))
        .args(["--region", region, "--output", "json"]);
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_CA_BUNDLE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_CONFIG_FILE", config)
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_RETRY_MODE", "standard");
    cmd
}

/// The key the tests' `aws` calls sign with when the service checks no signature.
pub const TEST_KEY: (&str, &str) = (
    "AKIDBURROWTEST000000",
    "burrow-test-secret-key-not-a-real-one",
);
