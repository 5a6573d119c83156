//! The tunneling service's checks on what each peer sends (placeholder until the service lands).
