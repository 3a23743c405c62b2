//! One cache for several processes (§12): this program is the owner, and starts itself again
//! as client processes that view the owner's pictures.
//!
//! ```sh
//! cargo run --example shared            # owner + 3 clients over generated pictures
//! ```
//!
//! The owner shares its CPU tier at a socket; each client connects, asks for every picture
//! (decoded once, by the owner, for all of them) and sums its pixels without copying them; the
//! owner then prints its table: one miss per picture, the rest hits or waits for that decode.

use std::path::Path;
use std::process::Command;
use texcache::{Cache, Config};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, socket, names @ ..] = args.as_slice() {
        if flag == "--client" {
            return client(Path::new(socket), names);
        }
    }
    let dir = std::env::temp_dir().join(format!("texcache-shared-example-{}", std::process::id()));
    let names = texcache::testing::samples::write_pictures(&dir, 8, 320, 240, true)?;
    let mut config = Config::default();
    config.mediadir = dir.clone();
    config.stats.history_interval_ms = 0;
    let cache = Cache::new(config)?;
    let socket = dir.join("cache.sock");
    cache.share(&socket)?; // or `[shared] socket = "..."` in the config
    let clients: Vec<_> = (0..3)
        .map(|_| {
            Command::new(std::env::current_exe()?)
                .arg("--client")
                .arg(&socket)
                .args(&names)
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut c in clients {
        c.wait()?;
    }
    println!("{}", cache.stats());
    drop(cache);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A client process: every picture, viewed in the owner's shared memory.
fn client(socket: &Path, names: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let owner = texcache::shared::connect(socket)?;
    let mut sum = 0u64;
    for n in names {
        let picture = owner.bitmap(n)?; // a hold in the owner's tier while it lives
        sum += picture.pixels().iter().map(|&b| b as u64).sum::<u64>();
    }
    println!(
        "client {}: {} pictures, pixel sum {sum}",
        std::process::id(),
        names.len()
    );
    Ok(())
}
