//! Native tests of the tunnel API's requests, answers and errors.

use super::*;

#[test]
fn request_bodies_follow_the_contract() {
    assert_eq!(
        body(&OpenRequest {
            thing_name: "pump-7".into(),
            services: vec!["SSH".into()],
        }),
        r#"{"thingName":"pump-7","services":["SSH"]}"#
    );
    assert_eq!(body(&ListRequest::default()), "{}");
    assert_eq!(
        body(&ListRequest {
            thing_name: Some("pump-7".into())
        }),
        r#"{"thingName":"pump-7"}"#
    );
    assert_eq!(
        body(&RotateRequest {
            tunnel_id: "t-1".into(),
            client_mode: ClientMode::All,
        }),
        r#"{"tunnelId":"t-1","clientMode":"ALL"}"#
    );
    assert_eq!(
        body(&RotateRequest {
            tunnel_id: "t-1".into(),
            client_mode: ClientMode::Source,
        }),
        r#"{"tunnelId":"t-1","clientMode":"SOURCE"}"#
    );
    assert_eq!(
        body(&TunnelRef {
            tunnel_id: "t-1".into()
        }),
        r#"{"tunnelId":"t-1"}"#
    );
    assert_eq!(Op::Open.path(), "/api/tunnels/open");
    assert_eq!(Op::Close.path(), "/api/tunnels/close");
}

#[test]
fn answers_are_read_and_the_token_never_shows() {
    let opened: Opened = read_answer(
        200,
        r#"{"tunnelId":"t-1","tunnelArn":"arn:x","sourceAccessToken":"SECRET","region":"us-east-1","extra":1}"#,
    )
    .expect("an open answer");
    assert_eq!(opened.tunnel_id, "t-1");
    assert_eq!(opened.source_access_token.as_str(), "SECRET");
    assert!(!format!("{opened:?}").contains("SECRET"));
    let rotated: Rotated = read_answer(200, r#"{"sourceAccessToken":"NEW"}"#).expect("rotate");
    assert!(!format!("{rotated:?}").contains("NEW"));

    let listed: Tunnels = read_answer(
        200,
        r#"{"tunnels":[{"tunnelId":"t-2","tunnelArn":"a","status":"OPEN","thingName":"pump-7",
            "services":["SSH"],"sourceConnected":false,"destinationConnected":true,
            "createdAt":1700000000,"expiresAt":1700043200},
           {"tunnelId":"t-1","tunnelArn":"a","status":"CLOSED","thingName":null,"services":[],
            "sourceConnected":false,"destinationConnected":false,"createdAt":1,"expiresAt":2}]}"#,
    )
    .expect("a list");
    assert_eq!(listed.tunnels.len(), 2);
    assert_eq!(listed.tunnels[0].thing_name.as_deref(), Some("pump-7"));
    assert!(listed.tunnels[0].destination_connected);
    assert_eq!(listed.tunnels[1].status, TunnelStatus::Closed);
    assert_eq!(listed.tunnels[1].thing_name, None);

    let bad: Result<Tunnels, _> = read_answer(200, "<html>");
    assert!(matches!(bad, Err(ApiError::Malformed(_))));
}

#[test]
fn each_error_code_is_named_in_words() {
    let check = |status: u16, body: &str, expected: ApiError, words: &str| {
        let err = error_of(status, body);
        assert_eq!(err, expected, "{status} {body}");
        let message = err.user_message();
        assert!(message.contains(words), "{message:?} should say {words:?}");
    };
    let json = |code: &str, message: &str| format!(r#"{{"error":"{code}","message":"{message}"}}"#);
    check(404, &json("ApiOff", "off"), ApiError::Off, "Token mode");
    check(404, "Not Found", ApiError::Off, "no tunnel API");
    check(404, &json("NotFound", "x"), ApiError::NotFound, "unknown");
    check(
        401,
        &json("Unauthenticated", "sign in"),
        ApiError::Unauthenticated,
        "401 Unauthorized",
    );
    check(
        403,
        &json("ThingNotAllowed", "pump-9 is not allowed"),
        ApiError::ThingNotAllowed("pump-9 is not allowed".into()),
        "allow",
    );
    check(
        403,
        &json("Forbidden", "foreign origin"),
        ApiError::Refused {
            status: 403,
            message: "foreign origin".into(),
        },
        "foreign origin",
    );
    check(
        400,
        &json("BadRequest", "bad thing name"),
        ApiError::BadRequest("bad thing name".into()),
        "bad thing name",
    );
    check(
        409,
        &json("TunnelClosed", "closed"),
        ApiError::TunnelClosed,
        "closed",
    );
    check(
        429,
        &json("LimitExceeded", "10 open"),
        ApiError::LimitExceeded("10 open".into()),
        "Open tunnels",
    );
    check(
        502,
        &json("Upstream", "AccessDenied"),
        ApiError::Upstream {
            status: 502,
            message: "AccessDenied".into(),
        },
        "AccessDenied",
    );
    check(
        500,
        "",
        ApiError::Upstream {
            status: 500,
            message: "HTTP 500".into(),
        },
        "HTTP 500",
    );
}

#[test]
fn shown_text_is_bounded_and_one_line() {
    let long = "x".repeat(1000);
    let ApiError::BadRequest(message) = error_of(400, &format!(r#"{{"message":"{long}\nnext"}}"#))
    else {
        panic!("a bad request");
    };
    assert_eq!(message.len(), MAX_SHOWN);
    let ApiError::BadRequest(message) = error_of(400, "line one\nline two") else {
        panic!("a bad request");
    };
    assert_eq!(message, "line one line two");
}

#[test]
fn thing_names_and_services() {
    assert!(check_thing_name("pump-7").is_ok());
    assert!(check_thing_name("a:b_c-9").is_ok());
    assert_eq!(
        check_thing_name("").expect_err("an empty name"),
        "enter the device's thing name"
    );
    assert!(check_thing_name("pump 7").is_err());
    assert!(check_thing_name("pump/7").is_err());
    assert!(check_thing_name(&"a".repeat(129)).is_err());
    assert_eq!(parse_services(""), Ok(vec!["SSH".to_owned()]));
    assert_eq!(
        parse_services(" SSH, VNC "),
        Ok(vec!["SSH".to_owned(), "VNC".to_owned()])
    );
    assert!(parse_services("a,b,c,d").is_err());
    assert!(parse_services("S/SH").is_err());
}

#[test]
fn spans() {
    assert_eq!(format_span(-1.0), "0 s");
    assert_eq!(format_span(f64::NAN), "0 s");
    assert_eq!(format_span(45.9), "45 s");
    assert_eq!(format_span(720.0), "12 min");
    assert_eq!(format_span(3.0 * 3600.0 + 300.0), "3 h 05 min");
    assert_eq!(format_span(2.0 * 86400.0 + 4.0 * 3600.0), "2 d 4 h");
}

#[test]
fn a_first_list_decides_the_way_in() {
    assert_eq!(offer_of(&Ok::<(), ApiError>(())), Offer::Offered);
    assert_eq!(
        offer_of::<()>(&Err(ApiError::Unauthenticated)),
        Offer::SignInNeeded
    );
    assert_eq!(offer_of::<()>(&Err(ApiError::Off)), Offer::NotOffered);
    assert_eq!(
        offer_of::<()>(&Err(ApiError::Unreachable)),
        Offer::NotOffered
    );
    assert_eq!(
        offer_of::<()>(&Err(ApiError::Malformed("x".into()))),
        Offer::NotOffered
    );
}
