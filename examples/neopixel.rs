//! A (simulated) NeoPixel set over HTTP — `adafruit_httpserver`'s
//! `httpserver_neopixel.py`.
//!
//! The pixel is application state; four routes change it from query
//! parameters, a form body, a JSON body or URL parameters, as in the Python
//! example. The last three are built as `Route` values first and registered
//! together with `add_routes`, the counterpart of `adafruit_httpserver`'s
//! `as_route`, `Route` and `add_routes`. A component outside 0–255 is a
//! `400`. Added: a colour picker page at `/` that posts JSON, and `/pixel`,
//! which reads the colour back as JSON.
//!
//! `cargo run --example neopixel [PORT]`, then open <http://127.0.0.1:5000/>, or
//! `curl '127.0.0.1:5000/change-neopixel-color?r=255&g=0&b=0'`.
use pollserve::{HttpError, Method, Request, Response, Route, Server};
use serde::{Deserialize, Serialize};

#[derive(Default, Clone, Copy, Serialize, Deserialize)]
struct Pixel {
    #[serde(default)]
    r: u8,
    #[serde(default)]
    g: u8,
    #[serde(default)]
    b: u8,
}

impl Pixel {
    fn fill(&mut self, colour: Pixel) -> Response {
        *self = colour;
        let Pixel { r, g, b } = colour;
        println!("NeoPixel set to ({r}, {g}, {b})"); // stands in for the LED
        Response::text(format!("Changed NeoPixel to color ({r}, {g}, {b})"))
    }
}

/// One colour component from a text value; missing means 0.
fn component(value: Option<&str>) -> Result<u8, HttpError> {
    value
        .unwrap_or("0")
        .parse()
        .map_err(|_| HttpError::bad_request("colour components are 0-255"))
}

const PAGE: &str = r##"<!doctype html>
<title>NeoPixel</title>
<input type="color" id="picker" value="#000000">
<p id="status"></p>
<script>
  const picker = document.getElementById('picker');
  picker.oninput = async () => {
    const hex = picker.value;
    const [r, g, b] = [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16));
    const response = await fetch('/change-neopixel-color/json', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ r, g, b }),
    });
    document.getElementById('status').textContent = await response.text();
  };
</script>
"##;

fn from_url_params(req: &Request, pixel: &mut Pixel) -> Result<Response, HttpError> {
    Ok(pixel.fill(Pixel {
        r: component(req.param("r"))?,
        g: component(req.param("g"))?,
        b: component(req.param("b"))?,
    }))
}

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<Pixel>::new();
    server.route("/", Method::GET, |_req, _| Ok(Response::html(PAGE)))?;
    server.route("/pixel", Method::GET, |_req, pixel: &mut Pixel| {
        Response::json(pixel)
    })?;
    server.route(
        "/change-neopixel-color",
        Method::GET,
        |req, pixel: &mut Pixel| {
            let q = req.query();
            Ok(pixel.fill(Pixel {
                r: component(q.get("r"))?,
                g: component(q.get("g"))?,
                b: component(q.get("b"))?,
            }))
        },
    )?;

    let form_route = Route::new(
        "/change-neopixel-color/form-data",
        Method::POST,
        |req, pixel: &mut Pixel| {
            let form = req.form()?; // r=255&g=0&b=0, multipart or text/plain
            Ok(pixel.fill(Pixel {
                r: component(form.get("r"))?,
                g: component(form.get("g"))?,
                b: component(form.get("b"))?,
            }))
        },
    );
    let json_route = Route::new(
        "/change-neopixel-color/json",
        Method::POST,
        |req, pixel: &mut Pixel| {
            Ok(pixel.fill(req.json()?)) // {"r": 255, "g": 0, "b": 0}; 400 if out of range
        },
    );
    server.add_routes([
        form_route,
        json_route,
        Route::new(
            "/change-neopixel-color/<r>/<g>/<b>",
            Method::GET,
            from_url_params,
        ),
    ])?;

    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut Pixel::default())
}
