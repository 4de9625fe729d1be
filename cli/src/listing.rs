//! `pollserve serve DIR`: a static file server with directory listings.

use std::time::Duration;

use pollserve::files::StaticRoot;
use pollserve::{Error, Server};
use std::sync::atomic::Ordering;

use crate::ServeArgs;

/// File names that suggest secrets; serving a directory holding one earns a warning.
const SENSITIVE: &[&str] = &[
    ".env",
    ".git",
    ".ssh",
    "id_rsa",
    "id_ed25519",
    ".aws",
    ".netrc",
    "secrets",
];

pub fn run(args: ServeArgs) -> Result<(), Error> {
    crate::init_log(args.quiet);
    let mut server = Server::<()>::new();
    let root = StaticRoot::new(&args.dir).map_err(|source| Error::StaticRoot {
        path: args.dir.clone(),
        source,
    })?;
    server.set_static_root(root.with_listing(!args.no_listing));
    for h in &args.headers {
        match h.split_once(':') {
            Some((name, value)) => {
                server.default_header(name.trim(), value.trim());
            }
            None => crate::print_err(format_args!(
                "pollserve: ignoring --header {h:?}: expected 'Name: value'"
            )),
        }
    }
    if let Some(auth) = &args.auth {
        crate::demo::require_basic_auth(&mut server, auth)?;
    }
    warn_about_secrets(&args.dir);
    let (addr, scheme, mut cert_watch) = args.tls.start(&mut server, &args.host, args.port)?;
    crate::print_out(format_args!(
        "Serving {} on {scheme}://{}/",
        args.dir.display(),
        display(addr)
    ));
    let terminate = crate::termination_requested()?;
    while !terminate.load(Ordering::SeqCst) {
        server.poll(&mut (), Duration::from_secs(1))?;
        if let Some(watch) = cert_watch.as_mut() {
            watch.check(&mut server);
        }
    }
    crate::shut_down(&mut server, &mut ())
}

fn display(addr: std::net::SocketAddr) -> String {
    match addr {
        std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        std::net::SocketAddr::V4(a) => a.to_string(),
    }
}

fn warn_about_secrets(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let found: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            SENSITIVE.iter().any(|s| n.eq_ignore_ascii_case(s))
                || n.ends_with(".pem")
                || n.ends_with(".key")
        })
        .collect();
    if !found.is_empty() {
        crate::print_err(format_args!(
            "pollserve: warning: {} holds {} — dotfiles are never served, but check that nothing else here is private",
            dir.display(),
            found.join(", ")
        ));
    }
}
