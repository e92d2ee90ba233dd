//! replenish appliance firmware for ESP32-C3 boards.
//!
//! An HX711 load cell (and optionally a VL53L0X tank sensor) feeds `replenish-firmware`'s
//! detection and device runtime; the runtime's messages go out over Wi-Fi to an MQTT 5 broker
//! in the protocol's binary encoding, on `{prefix}/{household}/{device}/{channel}`, with
//! `offline` as the retained last will. See `firmware/README.md` for wiring, configuration and
//! flashing.
//!
//! Tasks (esp-rtos runs an embassy executor): `wifi` keeps the station associated, `net` runs
//! the IP stack (DHCP, DNS, TCP), and `main` runs the appliance loop: sampling every
//! [`app::TICK_MS`], and the MQTT session whenever the network is up.
#![no_std]
#![no_main]

extern crate alloc;

mod app;
mod config;
mod heap;
mod mqtt;
mod storage;

use core::fmt::Write as _;

use embassy_executor::Spawner;
use embassy_net::{Runner, Stack, StackResources};
use embassy_time::{Duration, Timer};
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::delay::Delay;
use esp_hal::gpio::{Input, InputConfig, Level, Output, OutputConfig, Pull};
#[cfg(feature = "tank")]
use esp_hal::i2c::master::{Config as I2cConfig, I2c};
use esp_hal::rng::Rng;
#[cfg(feature = "tank")]
use esp_hal::time::Rate;
use esp_hal::timer::timg::TimerGroup;
use esp_println::println;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{
    AuthenticationMethodConfig, Config as WifiConfig, Interface, WifiController,
};
use heapless::{String, Vec};
use replenish_firmware::drivers::hx711::Hx711;
#[cfg(feature = "tank")]
use replenish_firmware::drivers::vl53l0x::Vl53l0x;
use replenish_firmware::{Calibration, RuntimeConfig, SlotMonitor};
#[cfg(feature = "tank")]
use replenish_firmware::{DetectorConfig, TankGeometry};
use replenish_protocol::{Birth, DeviceId, HouseholdId, Id, SensorKind, SlotSpec, Unit};
use static_cell::StaticCell;

use crate::app::{App, Runtime, Scale, TICK_MS, now_ms};

esp_bootloader_esp_idf::esp_app_desc!();

/// Stops with a message on the console (a misconfigured build, a peripheral that cannot start),
/// and reboots a minute later in case the cause was transient.
fn fatal(what: &str) -> ! {
    println!("fatal: {what}");
    Delay::new().delay_millis(60_000);
    esp_hal::system::software_reset()
}

/// Parses a build-time integer, or stops naming the variable.
fn integer<T: core::str::FromStr>(value: &str, name: &str) -> T {
    match value.trim().parse() {
        Ok(v) => v,
        Err(_) => not_a_number(value, name),
    }
}

/// Parses a build-time decimal number, or stops naming the variable.
fn decimal(value: &str, name: &str) -> f32 {
    match config::parse_decimal(value) {
        Some(v) => v,
        None => not_a_number(value, name),
    }
}

fn not_a_number(value: &str, name: &str) -> ! {
    println!("REPLENISH_{name} = \"{value}\" is not a number");
    fatal("bad build-time configuration")
}

/// Parses a build-time identifier, or stops naming the variable.
fn id<T: From<Id>>(value: &str, name: &str) -> T {
    match Id::new(value) {
        Ok(id) => id.into(),
        Err(e) => {
            println!("REPLENISH_{name} = \"{value}\": {e}");
            fatal("bad build-time configuration")
        }
    }
}

#[esp_rtos::main]
async fn main(spawner: Spawner) -> ! {
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    // Wi-Fi needs a heap (see `heap` below); the rest of the firmware does not.
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: heap::RECLAIMED);
    esp_alloc::heap_allocator!(size: heap::MARGIN);

    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);
    println!("replenish-esp32c3 {} starting", env!("CARGO_PKG_VERSION"));

    // Wi-Fi station.
    let password = config::WIFI_PASSWORD;
    let authentication = if password.is_empty() {
        AuthenticationMethodConfig::Open
    } else {
        match password.try_into() {
            Ok(p) => AuthenticationMethodConfig::Wpa2Personal(p),
            Err(_) => fatal("REPLENISH_WIFI_PASSWORD is longer than 64 bytes"),
        }
    };
    let ssid = match config::WIFI_SSID.try_into() {
        Ok(ssid) => ssid,
        Err(_) => fatal("REPLENISH_WIFI_SSID is longer than 32 bytes"),
    };
    let station = StationConfig::default()
        .with_ssid(ssid)
        .with_authentication(authentication);
    let controller = match WifiController::new(
        peripherals.WIFI,
        heap::wifi_config().with_initial_config(WifiConfig::Station(station)),
    ) {
        Ok(c) => c,
        Err(e) => {
            println!("Wi-Fi: {e:?}");
            fatal("cannot start Wi-Fi")
        }
    };
    let interface = Interface::station();
    let mac = interface.mac_address();

    // IP stack with DHCP.
    let rng = Rng::new();
    let seed = u64::from(rng.random()) << 32 | u64::from(rng.random());
    static RESOURCES: StaticCell<StackResources<3>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        interface,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        seed,
    );
    match wifi_task(controller) {
        Ok(token) => spawner.spawn(token),
        Err(_) => fatal("cannot spawn the Wi-Fi task"),
    }
    match net_task(runner) {
        Ok(token) => spawner.spawn(token),
        Err(_) => fatal("cannot spawn the network task"),
    }

    // Identity and birth.
    let household: HouseholdId = id(config::HOUSEHOLD, "HOUSEHOLD");
    let device = if config::DEVICE.is_empty() {
        let mut s: String<16> = String::new();
        let _ = write!(s, "c3-");
        for b in mac {
            let _ = write!(s, "{b:02x}");
        }
        id(&s, "DEVICE")
    } else {
        id(config::DEVICE, "DEVICE")
    };
    let Some(topics) = mqtt::Topics::new(&household, &device) else {
        fatal("topic too long: shorten REPLENISH_PREFIX, _HOUSEHOLD or _DEVICE")
    };
    let scale_spec = SlotSpec {
        id: id(config::SLOT, "SLOT"),
        consumable: id(config::CONSUMABLE, "CONSUMABLE"),
        unit: Unit::G,
        capacity: decimal(config::CAPACITY_G, "CAPACITY_G"),
        sensor: SensorKind::Level,
    };
    let mut slots = Vec::new();
    let _ = slots.push(scale_spec.clone());

    // HX711 on GPIO4 (DOUT) and GPIO5 (PD_SCK).
    let dout = Input::new(
        peripherals.GPIO4,
        InputConfig::default().with_pull(Pull::None),
    );
    let sck = Output::new(peripherals.GPIO5, Level::Low, OutputConfig::default());
    // The boot counter and calibrations kept in flash (build-time values on a fresh device).
    let built = Calibration::new(
        integer(config::HX711_OFFSET, "HX711_OFFSET"),
        decimal(config::HX711_SCALE, "HX711_SCALE"),
    );
    let boot = storage::boot(
        peripherals.FLASH,
        [built, Calibration::IDENTITY],
        rng.random(),
    );
    let scale = Scale::new(
        Hx711::new(dout, sck, Delay::new()),
        SlotMonitor::for_spec(&scale_spec, boot.calibrations[app::SCALE_SLOT]),
    );

    // Optional VL53L0X on I2C0: SDA GPIO6, SCL GPIO7 (cargo feature `tank`).
    #[cfg(feature = "tank")]
    let tank = if config::TANK_SLOT.is_empty() {
        None
    } else {
        let geometry = tank_geometry();
        let spec = SlotSpec {
            id: id(config::TANK_SLOT, "TANK_SLOT"),
            consumable: id(config::TANK_CONSUMABLE, "TANK_CONSUMABLE"),
            unit: Unit::Ml,
            capacity: geometry.capacity_ml(),
            sensor: SensorKind::Level,
        };
        let i2c = match I2c::new(
            peripherals.I2C0,
            I2cConfig::default().with_frequency(Rate::from_khz(100)),
        ) {
            Ok(i2c) => i2c.with_sda(peripherals.GPIO6).with_scl(peripherals.GPIO7),
            Err(_) => fatal("cannot configure I2C0"),
        };
        let monitor = SlotMonitor::new(
            spec.id.clone(),
            boot.calibrations[app::TANK_SLOT],
            DetectorConfig::for_unit(Unit::Ml),
        );
        if slots.push(spec).is_err() {
            fatal("too many slots");
        }
        Some(app::Tank::new(
            Vl53l0x::new(i2c, Delay::new()),
            geometry,
            monitor,
        ))
    };

    let mut firmware = String::new();
    let _ = firmware.push_str(env!("CARGO_PKG_VERSION"));
    let birth = Birth {
        model: id(config::MODEL, "MODEL"),
        firmware,
        // Counted in flash, so it grows with every boot (the agent orders boots by it); random
        // if the flash cannot be used (the agent then starts the device's history over).
        boot: boot.boot,
        slots,
        // Set by the runtime to its buffer size.
        buffer: None,
        usage: None,
    };
    let runtime = match Runtime::new(birth, RuntimeConfig::default()) {
        Ok(runtime) => runtime,
        Err(e) => {
            println!("birth refused: {e}");
            fatal("bad build-time configuration")
        }
    };
    static APP: StaticCell<App> = StaticCell::new();
    let app = App::new(runtime, scale, boot.storage, peripherals.USB_DEVICE);
    #[cfg(feature = "tank")]
    let app = match tank {
        Some(tank) => app.with_tank(tank),
        None => app,
    };
    let app = APP.init(app);
    let port: u16 = integer(config::MQTT_PORT, "MQTT_PORT");
    println!(
        "device {household}/{device}, broker {}:{port}",
        config::MQTT_HOST
    );

    run(stack, app, &device, &topics, port).await
}

/// The appliance loop: sample while offline, run an MQTT session while online, back off after
/// a failure.
async fn run(
    stack: Stack<'static>,
    app: &mut App,
    device: &DeviceId,
    topics: &mqtt::Topics,
    port: u16,
) -> ! {
    loop {
        while !stack.is_config_up() {
            app.tick(now_ms());
            Timer::after(Duration::from_millis(TICK_MS)).await;
        }
        if let Some(broker) = mqtt::resolve_broker(stack, port).await {
            let _ = mqtt::session(stack, broker, app, device, topics).await;
        }
        app.runtime.disconnected();
        let until = now_ms() + app.runtime.next_reconnect_delay_ms();
        println!("MQTT: reconnecting in {} ms", until - now_ms());
        while now_ms() < until {
            app.tick(now_ms());
            Timer::after(Duration::from_millis(TICK_MS)).await;
        }
    }
}

#[cfg(feature = "tank")]
/// The tank's geometry from the build-time configuration: a cylinder if a diameter is given,
/// else a box.
fn tank_geometry() -> TankGeometry {
    let empty = decimal(config::TANK_EMPTY_MM, "TANK_EMPTY_MM");
    let full = decimal(config::TANK_FULL_MM, "TANK_FULL_MM");
    let geometry = if config::TANK_DIAMETER_MM.is_empty() {
        TankGeometry::rectangular(
            decimal(config::TANK_WIDTH_MM, "TANK_WIDTH_MM"),
            decimal(config::TANK_DEPTH_MM, "TANK_DEPTH_MM"),
            empty,
            full,
        )
    } else {
        TankGeometry::cylinder(
            decimal(config::TANK_DIAMETER_MM, "TANK_DIAMETER_MM"),
            empty,
            full,
        )
    };
    match geometry {
        Ok(g) => g,
        Err(e) => {
            println!("tank geometry: {e}");
            fatal("bad build-time configuration")
        }
    }
}

/// Keeps the station associated: connects, waits for a disconnect, tries again.
#[embassy_executor::task]
async fn wifi_task(mut controller: WifiController<'static>) {
    if config::WIFI_SSID.is_empty() {
        println!("Wi-Fi: no REPLENISH_WIFI_SSID at build time; staying offline");
        return;
    }
    loop {
        match controller.connect_async().await {
            Ok(info) => {
                println!(
                    "Wi-Fi: connected to {} on channel {}",
                    info.ssid.as_str(),
                    info.channel
                );
                heap::report("after the Wi-Fi connect");
                if let Err(e) = controller.wait_for_disconnect_async().await {
                    println!("Wi-Fi: {e:?}");
                }
                println!("Wi-Fi: disconnected");
            }
            // Display, not Debug: Debug escapes the SSID (Unicode tables, about 2 KiB of flash).
            Err(e) => println!("Wi-Fi: cannot connect: {e}"),
        }
        Timer::after(Duration::from_secs(5)).await;
    }
}

/// Runs the IP stack.
#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Interface>) {
    runner.run().await
}
