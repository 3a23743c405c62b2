//! With the `ffmpeg` feature: checks that FFmpeg's development libraries are there, and says
//! what to install when they are not (instead of a linker or bindgen error from deep inside
//! `ffmpeg-sys-next`). Without it: nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    if std::env::var_os("CARGO_FEATURE_FFMPEG").is_none() {
        return;
    }
    let libs = ["libavformat", "libavcodec", "libswscale", "libavutil"];
    let found = std::process::Command::new("pkg-config")
        .arg("--exists")
        .args(libs)
        .status()
        .map(|s| s.success());
    let problem = match found {
        Ok(true) => return,
        Ok(false) => format!("pkg-config finds no {}", libs.join(", ")),
        Err(e) => format!("pkg-config cannot run ({e})"),
    };
    panic!(
        "\n\ntexcache's `ffmpeg` feature needs FFmpeg's development libraries: {problem}.\n\
         On Debian or Ubuntu: `bash scripts/install-deps` in the texcache repository, or\n  \
         sudo apt-get install pkg-config libavformat-dev libavcodec-dev libswscale-dev libavutil-dev clang libclang-dev\n\
         Elsewhere: FFmpeg 5 or newer with its headers, pkg-config and libclang.\n\
         Or build without FFmpeg (Y4M and GIF/APNG/WebP video only): leave the `ffmpeg` feature off\n\
         (`-p texcache-cli --no-default-features`, or `default-features = false` for the library).\n"
    );
}
