//! Build-time configuration: environment variables read with `option_env!` when the image is
//! built (`REPLENISH_WIFI_SSID=… cargo build --release`); changing one means building and
//! flashing again. The MQTT login is not among them: it is given on the serial console and kept
//! in flash (`storage.rs`), so no password is in the image. Numbers are parsed at boot; a value that
//! does not parse stops the device with a message on the serial console.

/// `option_env!` with a default.
macro_rules! env_or {
    ($name:literal, $default:expr) => {
        match option_env!($name) {
            Some(value) => value,
            None => $default,
        }
    };
}

/// Wi-Fi network name.
pub const WIFI_SSID: &str = env_or!("REPLENISH_WIFI_SSID", "");
/// Wi-Fi password (WPA2 personal); empty for an open network.
pub const WIFI_PASSWORD: &str = env_or!("REPLENISH_WIFI_PASSWORD", "");

/// The MQTT 5 broker: an IPv4 address, or a host name with the `dns` feature.
pub const MQTT_HOST: &str = env_or!("REPLENISH_MQTT_HOST", "192.168.1.2");
/// The broker's MQTT 5 port: the agent's embedded broker offers MQTT 5 on 1884.
pub const MQTT_PORT: &str = env_or!("REPLENISH_MQTT_PORT", "1884");
/// Topic prefix.
pub const PREFIX: &str = env_or!("REPLENISH_PREFIX", replenish_protocol::DEFAULT_PREFIX);

/// Household id (`a-z0-9_-`, at most 32).
pub const HOUSEHOLD: &str = env_or!("REPLENISH_HOUSEHOLD", "home");
/// Device id; empty to derive one from the Wi-Fi MAC address (`c3-aabbccddeeff`).
pub const DEVICE: &str = env_or!("REPLENISH_DEVICE", "");
/// Appliance model, announced in the birth.
pub const MODEL: &str = env_or!("REPLENISH_MODEL", "esp32c3-scale");

/// The load-cell slot's id.
pub const SLOT: &str = env_or!("REPLENISH_SLOT", "beans");
/// What the load-cell slot holds, as the agent's catalog names it.
pub const CONSUMABLE: &str = env_or!("REPLENISH_CONSUMABLE", "coffee_beans");
/// The load-cell slot's capacity in grams.
pub const CAPACITY_G: &str = env_or!("REPLENISH_CAPACITY_G", "1000");
/// HX711 reading of the empty slot (raw counts); the `tare` command replaces it until reboot.
pub const HX711_OFFSET: &str = env_or!("REPLENISH_HX711_OFFSET", "0");
/// Grams per HX711 count; the `calibrate` command replaces it until reboot.
pub const HX711_SCALE: &str = env_or!("REPLENISH_HX711_SCALE", "0.001");

// The tank slot (cargo feature `tank`).

#[cfg(feature = "tank")]
/// The tank slot's id; empty for no VL53L0X tank sensor.
pub const TANK_SLOT: &str = env_or!("REPLENISH_TANK_SLOT", "");
#[cfg(feature = "tank")]
/// What the tank holds.
pub const TANK_CONSUMABLE: &str = env_or!("REPLENISH_TANK_CONSUMABLE", "water");
#[cfg(feature = "tank")]
/// Inside diameter of an upright cylindrical tank, in mm (or give width and depth).
pub const TANK_DIAMETER_MM: &str = env_or!("REPLENISH_TANK_DIAMETER_MM", "");
#[cfg(feature = "tank")]
/// Inside width of a box-shaped tank, in mm.
pub const TANK_WIDTH_MM: &str = env_or!("REPLENISH_TANK_WIDTH_MM", "");
#[cfg(feature = "tank")]
/// Inside depth of a box-shaped tank, in mm.
pub const TANK_DEPTH_MM: &str = env_or!("REPLENISH_TANK_DEPTH_MM", "");
#[cfg(feature = "tank")]
/// The sensor's reading on the empty tank's bottom, in mm.
pub const TANK_EMPTY_MM: &str = env_or!("REPLENISH_TANK_EMPTY_MM", "200");
#[cfg(feature = "tank")]
/// The sensor's reading at the fill line, in mm.
pub const TANK_FULL_MM: &str = env_or!("REPLENISH_TANK_FULL_MM", "40");

/// Parses a decimal number such as `-0.00123` or `1000` (no exponent) without pulling in
/// `core`'s general float parser, which costs about 15 KiB of flash.
pub fn parse_decimal(s: &str) -> Option<f32> {
    let s = s.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut scale: f64 = 1.0;
    for (i, c) in whole.chars().chain(fraction.chars()).enumerate() {
        let digit = c.to_digit(10)?;
        // Digits beyond what a u64 holds cannot matter for an f32.
        if mantissa < u64::MAX / 100 {
            mantissa = mantissa * 10 + u64::from(digit);
            if i >= whole.len() {
                scale *= 10.0;
            }
        } else if i < whole.len() {
            scale /= 10.0;
        }
    }
    let value = (mantissa as f64 / scale) as f32;
    Some(if negative { -value } else { value })
}
