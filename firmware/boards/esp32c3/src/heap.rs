//! The heap, and the Wi-Fi settings that size what lives on it.
//!
//! Only Wi-Fi allocates: Espressif's blobs (through esp-radio), esp-rtos for the stacks of the
//! threads the radio creates, and rust-mqtt for each received packet. The appliance code, the
//! IP stack's sockets and the MQTT session's buffers are static or on the main task's future.
//!
//! # Budget
//!
//! esp-radio's defaults (10 static RX buffers, up to 32 dynamic RX and 32 dynamic TX buffers,
//! AMPDU on) are sized for throughput, and its quick start gives them 64 + 36 KiB of heap, which
//! its maintainers call conservative (esp-rs/esp-hal#4947); 48 000 bytes have been seen to run
//! out with the defaults (esp-rs/esp-hal#4524). This device sends a report of about 150 bytes
//! now and then and receives a command rarely, so [`wifi_config`] trades throughput for RAM.
//! The peak, with Espressif's figure of about 1.6 KB per buffer (ESP-IDF Kconfig help of
//! `ESP_WIFI_STATIC_RX_BUFFER_NUM`) and ESP-IDF's formula for the peak of dynamic buffers
//! (`dynamic_rx_buf_num × max RX frame + dynamic_tx_buf_num × max TX frame`, "Wi-Fi Buffer
//! Usage" in ESP-IDF's Wi-Fi guide):
//!
//! | what | KiB |
//! |---|---|
//! | esp-rtos thread serving the radio's timers: its stack (8192 bytes, esp-radio-rtos-driver) | 8.0 |
//! | the blobs' Wi-Fi task: its stack (6656 bytes, as ESP-IDF logs it) | 6.5 |
//! | static RX buffers: 4 × 1.6 | 6.4 |
//! | dynamic RX buffers, all 8 in use: 8 × 1.6 | 12.8 |
//! | dynamic TX buffers: esp-radio lets 3 data frames be in flight, plus one management frame: 4 × 1.6 | 6.4 |
//! | the blobs' state once associated (connection, BSS, WPA supplicant, 5 management RX buffers, timers, queues); estimate | 20 |
//! | rust-mqtt: one received packet (at most the protocol's 2 KiB payload; commands are < 200 bytes) | 2 |
//! | **peak** | **62.1** |
//!
//! The 20 KiB of blob state is an estimate, not a measurement: ESP-IDF measured about 43.6 KB
//! for an ESP32-S2 soft-AP with default buffers (espressif/esp-idf#5938), of which 16 KB are the
//! 10 static RX buffers and about 6.5 KB the Wi-Fi task's stack. Typical use is lower than the
//! peak: the RX queue holds at most [`RX_QUEUE`] frames for the IP stack, and a report is one
//! TCP segment.
//!
//! So the Wi-Fi and the MQTT client are sized to fit [`RECLAIMED`], the RAM the bootloader used,
//! which is free once the application runs and is not part of `.data`/`.bss`. [`MARGIN`] in
//! `.bss` covers the estimate's error and allocator fragmentation until the figures are measured
//! on a board: build with the `heap-stats` feature, which prints the heap's peak after each
//! connect. `firmware/size-report.sh` counts [`MARGIN`] in static RAM.
//!
//! # Risk
//!
//! Nothing here has run on hardware. Too few buffers cost throughput, not correctness: the
//! blobs drop a frame they cannot buffer (TCP sends it again). Running out of heap is worse:
//! the blobs fail to connect (`ESP_ERR_NO_MEM`, retried by the Wi-Fi task) and a failed Rust
//! allocation panics, which reboots the device. Without AMPDU the access point sends frames one
//! by one (802.11n makes aggregation optional); at this device's traffic that costs nothing.

use esp_radio::wifi::ControllerConfig;

/// Heap in the RAM the second-stage bootloader used: all of esp-hal's `dram2_seg` on the
/// ESP32-C3 (0x3FCCE400 to 0x3FCDE710).
pub const RECLAIMED: usize = 66_320;
/// Heap in `.bss`: the margin over the budget above, counted as static RAM.
pub const MARGIN: usize = 16 * 1024;

/// Frames received and waiting for the IP stack (esp-radio's default: 5).
pub const RX_QUEUE: usize = 4;
/// Frames sent and not yet through the radio (esp-radio's default).
const TX_QUEUE: usize = 3;
/// Static RX buffers, allocated when Wi-Fi starts (default 10). ESP-IDF allows 2 to 25.
const STATIC_RX_BUFFERS: u8 = 4;
/// Dynamic RX buffers (default 32); Espressif: at least the static ones.
const DYNAMIC_RX_BUFFERS: u16 = 8;
/// Dynamic TX buffers (default 32): the TX queue plus management frames.
const DYNAMIC_TX_BUFFERS: u16 = 8;
/// Block-ack window; unused without AMPDU RX, but esp-radio warns unless it is below the
/// dynamic RX buffers and twice the static ones.
const RX_BA_WINDOW: u8 = 3;

/// esp-radio's settings for a device that sends little: few buffers, no aggregation.
pub fn wifi_config() -> ControllerConfig {
    ControllerConfig::default()
        .with_rx_queue_size(RX_QUEUE)
        .with_tx_queue_size(TX_QUEUE)
        .with_static_rx_buf_num(STATIC_RX_BUFFERS)
        .with_dynamic_rx_buf_num(DYNAMIC_RX_BUFFERS)
        .with_static_tx_buf_num(0)
        .with_dynamic_tx_buf_num(DYNAMIC_TX_BUFFERS)
        .with_ampdu_rx_enable(false)
        .with_ampdu_tx_enable(false)
        .with_amsdu_tx_enable(false)
        .with_rx_ba_win(RX_BA_WINDOW)
}

/// Prints the heap's use (with the `heap-stats` feature, its peak too).
pub fn report(when: &str) {
    #[cfg(feature = "heap-stats")]
    esp_println::println!("heap {when}:\n{}", esp_alloc::HEAP.stats());
    #[cfg(not(feature = "heap-stats"))]
    esp_println::println!(
        "heap {when}: {} bytes used, {} free",
        esp_alloc::HEAP.used(),
        esp_alloc::HEAP.free()
    );
}
