//! Asks the linker for a map file next to the image, one per feature set
//! (`target/<triple>/<profile>/replenish-esp32c3[+feature...].map`), so that
//! `firmware/size-report.sh` can tell the application from Espressif's Wi-Fi blobs.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(out_dir) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let mut features: Vec<String> = env::vars()
        .filter_map(|(key, _)| key.strip_prefix("CARGO_FEATURE_").map(str::to_lowercase))
        .collect();
    features.sort();
    let mut name = String::from(env!("CARGO_PKG_NAME"));
    for feature in features {
        name.push('+');
        name.push_str(&feature);
    }
    // OUT_DIR is <target>/<triple>/<profile>/build/<package>-<hash>/out.
    if let Some(profile_dir) = out_dir.ancestors().nth(3) {
        let map = profile_dir.join(format!("{name}.map"));
        println!("cargo:rustc-link-arg-bins=-Map={}", map.display());
    }
}
