//! The agent binary's allocator settings take effect: jemalloc reads the binary's own
//! `malloc_conf`, thread caches off but for the async runtime's threads (agent/src/main.rs).

use std::process::Command;

#[test]
fn the_agent_binary_starts_jemalloc_with_thread_caches_off() {
    let output = Command::new(env!("CARGO_BIN_EXE_replenish-agent"))
        .arg("--print-default-config")
        // jemalloc prints its settings, as JSON, on stderr at exit.
        .env("_RJEM_MALLOC_CONF", "stats_print:true,stats_print_opts:J")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stats = String::from_utf8_lossy(&output.stderr);
    assert!(
        stats.contains(r#""global_var":"tcache:false""#),
        "the binary's malloc_conf was not read: {stats}"
    );
    assert!(stats.contains(r#""tcache":false"#), "{stats}");
}
