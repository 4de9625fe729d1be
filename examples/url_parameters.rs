//! Route parameters and wildcards — `adafruit_httpserver`'s `httpserver_url_parameters.py`.
//!
//! `<name>` captures one path segment (read it with `req.param("name")`),
//! `...` matches exactly one segment and `....` one or more. The first
//! registered route that matches wins, and one handler may serve several
//! routes.
//!
//! `cargo run --example url_parameters [PORT]`, then try
//! `/device/lamp/action/turn_on`, `/device/emergency-power-off/lamp`,
//! `/device/lamp/status/2024-05-01`, `/device/anything/status` or
//! `/device/a/b/c` on <http://127.0.0.1:5000>.
use pollserve::{HttpError, Method, Request, Response, Route, Server};

fn perform_action(req: &Request, _: &mut ()) -> Result<Response, HttpError> {
    let device = req.param("device_id").unwrap_or_default();
    // The emergency route has no <action>: default as `adafruit_httpserver` does.
    let action = req.param("action").unwrap_or("emergency_power_off");
    match action {
        "turn_on" | "turn_off" | "emergency_power_off" => {
            println!("{action} on device {device}");
            Ok(Response::text(format!(
                "Action ({action}) performed on device with ID: {device}"
            )))
        }
        _ => Err(HttpError::bad_request(format!("Unknown action ({action})"))),
    }
}

fn device_status_on_date(req: &Request, _: &mut ()) -> Result<Response, HttpError> {
    // Every captured parameter, in pattern order.
    let params: Vec<String> = req
        .params()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Ok(Response::text(format!(
        "Status on date ({}): ...",
        params.join(", ")
    )))
}

fn all_devices(_: &Request, _: &mut ()) -> Result<Response, HttpError> {
    Ok(Response::text("Status of all devices: ..."))
}

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<()>::new();
    server
        .route(
            "/device/<device_id>/action/<action>",
            Method::GET,
            perform_action,
        )?
        .route(
            "/device/emergency-power-off/<device_id>",
            Method::GET,
            perform_action,
        )?
        .route(
            "/device/<device_id>/status/<date>",
            Method::GET,
            device_status_on_date,
        )?;
    server.add_routes([
        Route::new("/device/.../status", Method::GET, all_devices).append_slash(true),
        Route::new("/device/....", Method::GET, all_devices).append_slash(true),
    ])?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut ())
}
