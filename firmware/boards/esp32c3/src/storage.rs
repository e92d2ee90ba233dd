//! The boot counter, calibrations and MQTT login in flash: `replenish-firmware`'s [`Journal`] in the first
//! two sectors of the `nvs` data partition (this image does not use ESP-IDF's NVS; espflash's
//! default partition table has a 24 KiB one at 0x9000).
//!
//! At boot the newest record gives the boot counter (incremented and written back at once) and
//! the calibrations, unless the image was built with other `REPLENISH_HX711_*` values than the
//! record started from: a deliberate new build-time calibration wins. `tare` and `calibrate`
//! write a new record, and so do `login` and `logout` on the serial console. A flash that cannot be used (no `nvs` partition, a failing write) is
//! reported on the console and the device runs on without persistence.

use esp_bootloader_esp_idf::partitions::{
    self, DataPartitionSubType, FlashRegion, PARTITION_TABLE_MAX_LEN, PartitionType,
};
use esp_hal::peripherals::FLASH;
use esp_println::println;
use esp_storage::FlashStorage;
use replenish_firmware::Calibration;
use replenish_firmware::persist::{self, Journal, Login, Record, SLOTS};
use static_cell::StaticCell;

/// Sector size of the ESP32-C3's flash (its erase unit).
const SECTOR: u32 = FlashStorage::SECTOR_SIZE;

/// The journal and the flash it lives in.
pub struct Storage {
    region: FlashRegion<'static, 'static>,
    journal: Journal,
    record: Record,
}

/// What the device starts with.
pub struct Boot {
    /// This boot's number (1 on a fresh flash; random without persistence).
    pub boot: u32,
    /// The calibration of each slot (stored, or the build-time one).
    pub calibrations: [Calibration; SLOTS],
    /// The journal, if the flash can be used.
    pub storage: Option<Storage>,
}

/// Opens the journal, counts this boot and picks the calibrations; `defaults` are the
/// build-time calibrations, `random` the boot id to use without persistence.
pub fn boot(flash: FLASH<'static>, defaults: [Calibration; SLOTS], random: u32) -> Boot {
    static FLASH_STORAGE: StaticCell<FlashStorage<'static>> = StaticCell::new();
    let without = |why: &str| {
        println!("storage: {why}; calibrations and the boot counter are not kept");
        Boot {
            boot: random,
            calibrations: defaults,
            storage: None,
        }
    };
    let flash = FLASH_STORAGE.init(FlashStorage::new(flash));
    let entry = {
        let mut table = [0u8; PARTITION_TABLE_MAX_LEN];
        match partitions::read_partition_table(flash, &mut table)
            .and_then(|t| t.find_partition(PartitionType::Data(DataPartitionSubType::Nvs)))
        {
            Ok(Some(entry)) => entry,
            Ok(None) => return without("no nvs partition"),
            // Plain messages: the errors' `Debug` would cost flash for a one-off diagnosis.
            Err(_) => return without("cannot read the partition table"),
        }
    };
    let mut region = entry.as_flash_region(flash);
    if region.partition_size() < 2 * SECTOR as usize {
        return without("nvs partition smaller than two sectors");
    }
    let opened = match region.as_nor_flash() {
        Ok(mut nor) => Journal::open(&mut nor, 0, SECTOR),
        Err(_) => return without("encrypted nvs partition"),
    };
    let (journal, stored) = match opened {
        Ok(opened) => opened,
        Err(_) => return without("cannot read the journal"),
    };
    let origin = persist::fingerprint(&defaults);
    let mut record = match stored {
        Some(r) if r.origin == origin => r,
        // Another build-time calibration: start from it, keep counting boots and the login.
        Some(r) => Record {
            boot: r.boot,
            origin,
            login: r.login,
            ..Record::default()
        },
        None => Record {
            origin,
            ..Record::default()
        },
    };
    record.boot = record.boot.wrapping_add(1);
    let mut calibrations = defaults;
    for (c, stored) in calibrations.iter_mut().zip(record.calibrations) {
        if let Some(stored) = stored {
            *c = stored;
        }
    }
    let mut storage = Storage {
        region,
        journal,
        record,
    };
    if !storage.write() {
        return without("cannot write the journal");
    }
    Boot {
        boot: storage.record.boot,
        calibrations,
        storage: Some(storage),
    }
}

impl Storage {
    /// Keeps `calibration` as slot `index`'s (0: load cell, 1: tank); false if it was not
    /// written.
    pub fn save_calibration(&mut self, index: usize, calibration: Calibration) -> bool {
        let Some(slot) = self.record.calibrations.get_mut(index) else {
            return false;
        };
        *slot = Some(calibration);
        self.write()
    }

    /// The MQTT login given on the console, if any.
    pub fn login(&self) -> Option<Login> {
        self.record.login
    }

    /// Keeps `login` (`None`: forgets it); false if it was not written.
    pub fn save_login(&mut self, login: Option<Login>) -> bool {
        self.record.login = login;
        self.write()
    }

    fn write(&mut self) -> bool {
        let Ok(mut nor) = self.region.as_nor_flash() else {
            return false;
        };
        match self.journal.save(&mut nor, &mut self.record) {
            Ok(()) => true,
            Err(_) => {
                println!("storage: cannot write the journal");
                false
            }
        }
    }
}
