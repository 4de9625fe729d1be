//! One route answering several methods — `adafruit_httpserver`'s `httpserver_methods.py`.
//!
//! `/api` (and `/api/`) lists objects on `GET`, adds or replaces one on
//! `POST`/`PUT` and deletes one on `DELETE`, all as JSON. The objects live in
//! the application state that `poll` lends to the handler.
//!
//! `cargo run --example methods [PORT]`, then for example
//! `curl -X POST -d '{"id":2,"name":"Object 2"}' http://127.0.0.1:5000/api`.
use pollserve::{HttpError, Method, Request, Response, Route, Server, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Serialize, Deserialize)]
struct Object {
    id: u64,
    name: String,
}

fn api(req: &Request, objects: &mut Vec<Object>) -> Result<Response, HttpError> {
    match req.method() {
        // A GET route also answers HEAD (the server drops the body).
        Method::GET | Method::HEAD => Response::json(objects),
        Method::POST | Method::PUT => {
            let object: Object = req.json()?; // 400 with the reason if invalid
            let message = match objects.iter_mut().find(|o| o.id == object.id) {
                Some(existing) => {
                    *existing = object.clone();
                    "Object updated"
                }
                None => {
                    objects.push(object.clone());
                    "Object added"
                }
            };
            Response::json(&json!({ "message": message, "object": object }))
        }
        Method::DELETE => {
            #[derive(Deserialize)]
            struct Id {
                id: u64,
            }
            let Id { id } = req.json()?;
            match objects.iter().position(|o| o.id == id) {
                Some(i) => {
                    let object = objects.remove(i);
                    Response::json(&json!({ "message": "Object deleted", "object": object }))
                }
                None => Ok(
                    Response::json(&json!({ "message": "Object not found", "id": id }))?
                        .with_status(StatusCode::NOT_FOUND),
                ),
            }
        }
        other => Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{other} is not handled here"),
        )),
    }
}

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<Vec<Object>>::new();
    let methods = [Method::GET, Method::POST, Method::PUT, Method::DELETE];
    server.add_route(Route::new("/api", methods, api).append_slash(true))?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    let mut objects = vec![Object {
        id: 1,
        name: "Object 1".into(),
    }];
    server.serve_forever(&mut objects)
}
