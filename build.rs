//! With the `ffmpeg` or `turbojpeg` feature: checks that the system libraries they need are
//! there (FFmpeg's development libraries; libjpeg-turbo's `libturbojpeg`), and says what to
//! install when they are not, instead of a linker or bindgen error from deep inside the build.
//! Without them: nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    if std::env::var_os("CARGO_FEATURE_FFMPEG").is_some() {
        require(
            "ffmpeg",
            &["libavformat", "libavcodec", "libswscale", "libavutil"],
            "pkg-config libavformat-dev libavcodec-dev libswscale-dev libavutil-dev clang libclang-dev",
            "FFmpeg 5 or newer with its headers, pkg-config and libclang",
            "Or build without FFmpeg (Y4M and GIF/APNG/WebP video only): leave the `ffmpeg` feature off",
        );
    }
    if std::env::var_os("CARGO_FEATURE_TURBOJPEG").is_some() {
        require(
            "turbojpeg",
            &["libturbojpeg"],
            "pkg-config libturbojpeg0-dev",
            "libjpeg-turbo 2.0 or newer (its TurboJPEG library) and pkg-config",
            "Or build without it (JPEG through zune-jpeg): leave the `turbojpeg` feature off",
        );
        // Where pkg-config says the library is, for installs outside the linker's own paths.
        if let Ok(out) = std::process::Command::new("pkg-config")
            .args(["--libs-only-L", "libturbojpeg"])
            .output()
        {
            for dir in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Some(dir) = dir.strip_prefix("-L") {
                    println!("cargo:rustc-link-search=native={dir}");
                }
            }
        }
    }
}

/// Panics with what to install when pkg-config does not find all of `libs`.
fn require(feature: &str, libs: &[&str], apt: &str, elsewhere: &str, without: &str) {
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
        "\n\ntexcache's `{feature}` feature needs system libraries: {problem}.\n\
         On Debian or Ubuntu: `bash scripts/install-deps` in the texcache repository, or\n  \
         sudo apt-get install {apt}\n\
         Elsewhere: {elsewhere}.\n\
         {without}\n\
         (`-p texcache-cli --no-default-features`, or `default-features = false` for the library).\n"
    );
}
