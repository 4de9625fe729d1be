//! `adafruit_httpserver`'s `httpserver_websocket.py`, whole: a page at
//! `/client` shows the CPU temperature, pushed over a WebSocket every second,
//! and a colour picker whose value the page sends back to set the NeoPixel.
//! There is one client at a time: the handler that accepts a new WebSocket
//! closes the previous one, from inside the handler, with
//! [`Request::outbox`](pollserve::Request::outbox).
//!
//! A computer has no NeoPixel: the colour is kept, logged, and shown as the
//! picker's starting value when the page is loaded again. The temperature
//! comes from `/sys/class/thermal` on Linux; without a sensor the page shows
//! `no sensor`.
//!
//! `cargo run --example websocket [PORT]`, then open
//! <http://127.0.0.1:5000/client>.
use pollserve::ws::{CloseCode, Message, WsId};
use pollserve::{Method, Response, Server};
use std::time::{Duration, Instant};

const PAGE: &str = r#"<!doctype html>
<html lang="en">
    <head>
        <title>Websocket Client</title>
    </head>
    <body>
        <p>CPU temperature: <strong>-</strong>&deg;C</p>
        <p>NeoPixel Color: <input type="color" value="COLOUR"></p>
        <script>
            const cpuTemp = document.querySelector('strong');
            const colorPicker = document.querySelector('input[type="color"]');

            let ws = new WebSocket('ws://' + location.host + '/connect-websocket');

            ws.onopen = () => console.log('WebSocket connection opened');
            ws.onclose = () => console.log('WebSocket connection closed');
            ws.onmessage = event => cpuTemp.textContent = event.data;
            ws.onerror = error => cpuTemp.textContent = error;

            colorPicker.oninput = debounce(() => ws.send(colorPicker.value), 200);

            function debounce(callback, delay = 1000) {
                let timeout;
                return (...args) => {
                    clearTimeout(timeout);
                    timeout = setTimeout(() => callback(...args), delay);
                };
            }
        </script>
    </body>
</html>
"#;

#[derive(Default)]
struct App {
    /// The one connected client.
    websocket: Option<WsId>,
    /// The NeoPixel's colour.
    pixel: (u8, u8, u8),
}

/// The first thermal zone's reading, in °C.
fn cpu_temperature() -> Option<f64> {
    let millidegrees = std::fs::read_to_string("/sys/class/thermal/thermal_zone0/temp").ok()?;
    Some(millidegrees.trim().parse::<f64>().ok()? / 1000.0)
}

/// `#rrggbb`, as an `<input type="color">` sends it.
fn parse_colour(text: &str) -> Option<(u8, u8, u8)> {
    let hex = text.strip_prefix('#')?;
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some((channel(0)?, channel(2)?, channel(4)?))
}

fn main() -> Result<(), pollserve::Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<App>::new();
    server.route("/client", Method::GET, |_req, app: &mut App| {
        let (r, g, b) = app.pixel;
        let colour = format!("#{r:02x}{g:02x}{b:02x}");
        Ok(Response::html(PAGE.replace("COLOUR", &colour)))
    })?;
    server.route("/connect-websocket", Method::GET, |req, app: &mut App| {
        let (response, ws) = req.accept_websocket()?;
        // Close any existing connection.
        if let Some(old) = app.websocket.replace(ws) {
            req.outbox()
                .close(old, CloseCode::NORMAL, "another client connected");
        }
        Ok(response)
    })?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    println!("open http://127.0.0.1:{port}/client");

    let mut app = App::default();
    let mut next_reading = Instant::now();
    loop {
        let wait = next_reading.saturating_duration_since(Instant::now());
        server.poll(&mut app, wait)?;
        let Some(id) = app.websocket else {
            next_reading = Instant::now() + Duration::from_secs(1);
            continue;
        };
        // What the page sent: colours for the pixel.
        while let Some(message) = server.ws(id).receive() {
            match message {
                Message::Text(text) => match parse_colour(&text) {
                    Some(rgb) => {
                        app.pixel = rgb;
                        log::info!("NeoPixel colour {text} = {rgb:?}");
                    }
                    None => {
                        let start: String = text.chars().take(32).collect();
                        log::warn!("not a colour: {start:?}")
                    }
                },
                Message::Binary(_) => log::warn!("binary message ignored"),
            }
        }
        // Once a second, the temperature.
        if Instant::now() >= next_reading {
            let reading = match cpu_temperature() {
                Some(celsius) => format!("{celsius:.2}"),
                None => "no sensor".to_owned(),
            };
            server.ws(id).send_text_quiet(&reading);
            next_reading = Instant::now() + Duration::from_secs(1);
        }
        if server.ws(id).is_closed() {
            app.websocket = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_colour;

    #[test]
    fn colours_from_the_picker_and_garbage() {
        assert_eq!(parse_colour("#ff8000"), Some((255, 128, 0)));
        assert_eq!(parse_colour("#FF8000"), Some((255, 128, 0)));
        assert_eq!(parse_colour("ff8000"), None);
        assert_eq!(parse_colour("#ff80"), None);
        assert_eq!(parse_colour("#ff80zz"), None);
        assert_eq!(parse_colour("#ffé000"), None);
    }
}
