//! Whether this CPU can run this build.
//!
//! The workspace is compiled for AVX2 on x86-64 (`.cargo/config.toml`: CPUs from 2013 on;
//! every loop the compiler vectorises, in our code and in tract's, runs on 8 floats instead
//! of 4). Code compiled so dies of an illegal instruction on an older CPU, somewhere, late:
//! the plugins and the tools ask here first and refuse to start with a clear message
//! instead. Building with `RUSTFLAGS="-C target-cpu=x86-64"` makes a baseline build (slower,
//! runs anywhere), for which this check passes everywhere.

/// `None` when this CPU has every extension the build assumes; otherwise what is missing and
/// how to build for this machine.
pub fn unsupported() -> Option<String> {
    let missing = missing_features();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "this build of gst-vcc needs the CPU extensions {} that this CPU does not have; \
         rebuild with RUSTFLAGS=\"-C target-cpu=native\" (or \"-C target-cpu=x86-64\" for \
         any x86-64)",
        missing.join(", ")
    ))
}

/// The extensions this build was compiled to use and this CPU lacks.
fn missing_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut missing = assumed_features();
    #[cfg(target_arch = "x86_64")]
    missing.retain(|feature| !detected(feature));
    missing
}

/// The x86-64 extensions beyond the baseline this build was compiled to use.
fn assumed_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut assumed = Vec::new();
    macro_rules! assumed {
        ($($feature:tt),*) => {$(
            if cfg!(all(target_arch = "x86_64", target_feature = $feature)) {
                assumed.push($feature);
            }
        )*};
    }
    assumed!(
        "avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "lzcnt", "movbe"
    );
    assumed
}

#[cfg(target_arch = "x86_64")]
fn detected(feature: &str) -> bool {
    match feature {
        "avx" => std::arch::is_x86_feature_detected!("avx"),
        "avx2" => std::arch::is_x86_feature_detected!("avx2"),
        "fma" => std::arch::is_x86_feature_detected!("fma"),
        "bmi1" => std::arch::is_x86_feature_detected!("bmi1"),
        "bmi2" => std::arch::is_x86_feature_detected!("bmi2"),
        "f16c" => std::arch::is_x86_feature_detected!("f16c"),
        "lzcnt" => std::arch::is_x86_feature_detected!("lzcnt"),
        "movbe" => std::arch::is_x86_feature_detected!("movbe"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_that_built_this_can_run_it() {
        // The tests run where they were built: anything missing here is a wrong check.
        assert_eq!(unsupported(), None);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_build_uses_what_the_config_asks_for() {
        // Fails when .cargo/config.toml's flags stop applying (e.g. a RUSTFLAGS in the
        // environment overrides them): the benchmarks would then measure another build.
        if std::env::var_os("GST_VCC_BASELINE_BUILD").is_none() {
            assert!(assumed_features().contains(&"avx2"), "built without AVX2");
        }
    }
}
