//! What a device keeps across reboots: its boot counter, its slots' calibrations and its MQTT
//! login, as small CRC-checked records in a journal of two flash sectors.
//!
//! # Format
//!
//! A [`Record`] is [`RECORD_LEN`] bytes, little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..2 | magic `0x52 0x50` (`"RP"`) |
//! | 2 | format version, [`VERSION`] |
//! | 3 | bit *i* set: slot *i* has a calibration |
//! | 4..8 | generation: one more than the record it replaces |
//! | 8..12 | boot counter |
//! | 12..16 | origin: [`fingerprint`] of the build-time calibrations the record started from |
//! | 16..24, 24..32 | per slot: offset (`i32`), scale (`f32` bits) |
//! | 32 | length of the MQTT password, 0 for none |
//! | 33..36 | zero |
//! | 36..100 | the MQTT password, zero-padded |
//! | 100..104 | CRC-32 (IEEE) of bytes 0..100 |
//!
//! Format 1 (36 bytes: bytes 0..32 as above, then the CRC of 0..32) had no login. A journal
//! holding only format 1 records is read, and its newest record is carried on (boot counter
//! and calibrations kept) by the first save, which goes to the other sector, so the format 1
//! record stands until its successor is written.
//!
//! The password is kept in plain text: flash encryption (the chip's, with an encrypted `nvs`
//! partition) is what protects it from someone who takes the device apart.
//!
//! # Journal
//!
//! Records are appended one after the other in one sector; when it is full, the other sector is
//! erased and the next record goes to its start. A sector is erased once every
//! `sector size / RECORD_LEN` records (39 for 4 KiB sectors), so a device that writes a record
//! at every boot and calibration wears its flash (100 000 erase cycles per sector, typically)
//! after millions of boots. At start the newest valid record wins: a record torn by a
//! power cut fails its CRC and the one before it stands.
//!
//! Encoding, decoding and the choice of the newest record are pure functions; [`Journal`] adds
//! the flash access over `embedded-storage`'s [`NorFlash`], so it runs against a RAM model of
//! NOR flash in the tests.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

use crate::calibration::Calibration;

/// Length of an encoded record, a multiple of common flash write sizes (1, 4).
pub const RECORD_LEN: usize = 104;
/// Length of a format 1 record.
pub const V1_RECORD_LEN: usize = 36;
/// Calibrations a record holds (a load cell and a tank on the ESP32-C3 board).
pub const SLOTS: usize = 2;
/// Format version in byte 2.
pub const VERSION: u8 = 2;
/// The longest MQTT password a record holds, in bytes.
pub const LOGIN_MAX: usize = 64;
const MAGIC: [u8; 2] = *b"RP";
const CRC_AT: usize = RECORD_LEN - 4;
const LOGIN_AT: usize = 36;

/// A device's MQTT password, given to it at run time (the user name is the device id):
/// 1 to [`LOGIN_MAX`] visible ASCII characters, as the agent's logins are.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Login {
    len: u8,
    bytes: [u8; LOGIN_MAX],
}

impl Login {
    /// The password, or `None` if it is empty, too long or holds anything but visible ASCII.
    pub fn new(password: &[u8]) -> Option<Self> {
        if password.is_empty()
            || password.len() > LOGIN_MAX
            || !password.iter().all(u8::is_ascii_graphic)
        {
            return None;
        }
        let mut bytes = [0u8; LOGIN_MAX];
        bytes[..password.len()].copy_from_slice(password);
        Some(Self {
            len: password.len() as u8,
            bytes,
        })
    }

    /// The password (visible ASCII).
    pub fn password(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl core::fmt::Debug for Login {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never in a log.
        f.write_str("Login(..)")
    }
}

/// What a device keeps across reboots.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Record {
    /// Sequence number of the record in the journal (set by [`Journal::save`]).
    pub generation: u32,
    /// The boot counter: the device's boot id for the protocol.
    pub boot: u32,
    /// [`fingerprint`] of the build-time calibrations this record started from; a device built
    /// with other calibrations ignores the stored ones.
    pub origin: u32,
    /// Calibration per slot, if one was made.
    pub calibrations: [Option<Calibration>; SLOTS],
    /// The MQTT password given at run time, if any.
    pub login: Option<Login>,
}

impl Record {
    /// The record in its flash form.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = VERSION;
        out[4..8].copy_from_slice(&self.generation.to_le_bytes());
        out[8..12].copy_from_slice(&self.boot.to_le_bytes());
        out[12..16].copy_from_slice(&self.origin.to_le_bytes());
        for (i, calibration) in self.calibrations.iter().enumerate() {
            if let Some(c) = calibration {
                out[3] |= 1 << i;
                let at = 16 + 8 * i;
                out[at..at + 4].copy_from_slice(&c.offset.to_le_bytes());
                out[at + 4..at + 8].copy_from_slice(&c.scale.to_bits().to_le_bytes());
            }
        }
        if let Some(login) = &self.login {
            out[32] = login.len;
            out[LOGIN_AT..LOGIN_AT + LOGIN_MAX].copy_from_slice(&login.bytes);
        }
        let crc = crc32(&out[..CRC_AT]);
        out[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// A record from its flash form, or `None` if the bytes are not a valid record of this
    /// version (erased, torn, corrupted, or a stored value that is not usable).
    pub fn decode(bytes: &[u8; RECORD_LEN]) -> Option<Self> {
        decode(bytes)
    }

    /// A format 1 record (no login), or `None`.
    pub fn decode_v1(bytes: &[u8; V1_RECORD_LEN]) -> Option<Self> {
        decode(bytes)
    }
}

/// A record of either format, told apart by its length; its CRC is its last 4 bytes.
fn decode(bytes: &[u8]) -> Option<Record> {
    let version = match bytes.len() {
        RECORD_LEN => VERSION,
        V1_RECORD_LEN => 1,
        _ => return None,
    };
    // Fixed-size views: no bounds checks (and their panic paths) in the image.
    let (body, crc) = bytes.split_last_chunk::<4>()?;
    let head = body.first_chunk::<32>()?;
    if head[0..2] != MAGIC || head[2] != version || head[3] >> SLOTS != 0 {
        return None;
    }
    if crc32(body) != u32::from_le_bytes(*crc) {
        return None;
    }
    let mut calibrations = [None; SLOTS];
    for (i, calibration) in calibrations.iter_mut().enumerate() {
        if head[3] & (1 << i) != 0 {
            let at = 16 + 8 * i;
            let c = Calibration::new(
                u32_at(head, at) as i32,
                f32::from_bits(u32_at(head, at + 4)),
            );
            if !c.is_valid() {
                return None;
            }
            *calibration = Some(c);
        }
    }
    // Format 2: byte 32 is the password's length, the password starts at byte 36.
    let mut login = None;
    if let Some((&len, rest)) = body.get(32..).and_then(<[u8]>::split_first)
        && len > 0
    {
        login = Some(Login::new(rest.get(3..3 + usize::from(len))?)?);
    }
    Some(Record {
        generation: u32_at(head, 4),
        boot: u32_at(head, 8),
        origin: u32_at(head, 12),
        calibrations,
        login,
    })
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and Ethernet compute it), bit by bit: small code,
/// and records are short.
pub fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &b| crc32_step(crc, b))
}

/// A fingerprint of calibrations (a CRC of their bytes), for [`Record::origin`].
pub fn fingerprint(calibrations: &[Calibration]) -> u32 {
    let mut crc = !0u32;
    for c in calibrations {
        for b in c
            .offset
            .to_le_bytes()
            .into_iter()
            .chain(c.scale.to_bits().to_le_bytes())
        {
            crc = crc32_step(crc, b);
        }
    }
    !crc
}

fn crc32_step(mut crc: u32, b: u8) -> u32 {
    crc ^= u32::from(b);
    for _ in 0..8 {
        crc = if crc & 1 != 0 {
            (crc >> 1) ^ 0xEDB8_8320
        } else {
            crc >> 1
        };
    }
    crc
}

/// The newest of some records: the highest generation.
pub fn newest(records: impl IntoIterator<Item = Record>) -> Option<Record> {
    records.into_iter().max_by_key(|r| r.generation)
}

/// Why the journal failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error<E> {
    /// The flash failed.
    #[error("flash error: {0:?}")]
    Flash(E),
    /// The flash's sectors or write size do not fit the journal (two erase sectors at `base`,
    /// records a multiple of the write size).
    #[error("the flash does not fit a journal of two sectors")]
    Geometry,
}

/// Where a record sits: sector 0 or 1, and index in the sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    sector: u32,
    index: u32,
}

/// Reads both sectors as records of `len` bytes: the newest valid one with its
/// sector, and each sector's first free index (`None`: full).
#[allow(clippy::type_complexity)]
fn scan<F: ReadNorFlash>(
    flash: &mut F,
    base: u32,
    sector_size: u32,
    len: usize,
) -> Result<(Option<(Record, u32)>, [Option<u32>; 2]), Error<F::Error>> {
    let per_sector = sector_size / len as u32;
    let mut best: Option<(Record, u32)> = None;
    let mut free = [Some(0u32); 2];
    let mut buffer = [0u8; RECORD_LEN];
    let Some(bytes) = buffer.get_mut(..len) else {
        return Err(Error::Geometry);
    };
    for sector in 0..2 {
        for index in 0..per_sector {
            let at = base + sector * sector_size + index * len as u32;
            flash.read(at, bytes).map_err(Error::Flash)?;
            if bytes.iter().all(|&b| b == 0xFF) {
                continue;
            }
            // Anything written, valid or torn, is not free.
            free[sector as usize] = (index + 1 < per_sector).then_some(index + 1);
            if let Some(record) = decode(bytes)
                && best.is_none_or(|(b, _)| record.generation > b.generation)
            {
                best = Some((record, sector));
            }
        }
    }
    Ok((best, free))
}

/// A journal of [`Record`]s in two flash sectors starting at `base` (see the
/// [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    base: u32,
    sector_size: u32,
    /// Sector of the newest record, and the first free index after it (`None`: full).
    current: Option<(u32, Option<u32>)>,
    generation: u32,
}

impl Journal {
    /// Reads both sectors and returns the journal with the newest valid record, if any (a
    /// format 1 record if there is no newer one; the next save goes to the other sector).
    pub fn open<F: ReadNorFlash>(
        flash: &mut F,
        base: u32,
        sector_size: u32,
    ) -> Result<(Self, Option<Record>), Error<F::Error>> {
        if sector_size < RECORD_LEN as u32
            || !RECORD_LEN.is_multiple_of(F::READ_SIZE)
            || !V1_RECORD_LEN.is_multiple_of(F::READ_SIZE)
            || base
                .checked_add(2 * sector_size)
                .is_none_or(|end| end as usize > flash.capacity())
        {
            return Err(Error::Geometry);
        }
        let (best, free) = scan(flash, base, sector_size, RECORD_LEN)?;
        let current = best.map(|(_, sector)| (sector, free[sector as usize]));
        let (best, current) = match best {
            Some(_) => (best, current),
            None => {
                let (v1, _) = scan(flash, base, sector_size, V1_RECORD_LEN)?;
                // Treated as a full sector: its successor is written to the other one.
                (v1, v1.map(|(_, sector)| (sector, None)))
            }
        };
        let journal = Self {
            base,
            sector_size,
            current,
            generation: best.map_or(0, |(r, _)| r.generation),
        };
        Ok((journal, best.map(|(r, _)| r)))
    }

    /// Appends `record` as the newest, with the next generation (written into `record`).
    pub fn save<F: NorFlash>(
        &mut self,
        flash: &mut F,
        record: &mut Record,
    ) -> Result<(), Error<F::Error>> {
        if !RECORD_LEN.is_multiple_of(F::WRITE_SIZE)
            || !self.sector_size.is_multiple_of(F::ERASE_SIZE as u32)
        {
            return Err(Error::Geometry);
        }
        let slot = match self.current {
            Some((sector, Some(index))) => Slot { sector, index },
            // Full, or nothing valid yet: start over in the other sector (sector 0 at first).
            current => {
                let sector = current.map_or(0, |(s, _)| 1 - s);
                let from = self.base + sector * self.sector_size;
                flash
                    .erase(from, from + self.sector_size)
                    .map_err(Error::Flash)?;
                Slot { sector, index: 0 }
            }
        };
        record.generation = self.generation.wrapping_add(1);
        let at = self.base + slot.sector * self.sector_size + slot.index * RECORD_LEN as u32;
        flash.write(at, &record.encode()).map_err(Error::Flash)?;
        let per_sector = self.sector_size / RECORD_LEN as u32;
        let next = (slot.index + 1 < per_sector).then_some(slot.index + 1);
        self.current = Some((slot.sector, next));
        self.generation = record.generation;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_storage::nor_flash::{ErrorType, NorFlashError, NorFlashErrorKind};
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// NOR flash in RAM: erased bytes are 0xFF, writes only clear bits, and writing a byte twice
    /// without an erase is refused (as a real controller's ECC would corrupt it).
    struct RamFlash {
        bytes: Vec<u8>,
        written: Vec<bool>,
        erases: usize,
        /// Fail (and write only half of) the write after this many successful ones.
        tear_after: Option<usize>,
        writes: usize,
    }

    #[derive(Debug, PartialEq)]
    struct FlashError(NorFlashErrorKind);

    impl NorFlashError for FlashError {
        fn kind(&self) -> NorFlashErrorKind {
            self.0
        }
    }

    const SECTOR: u32 = 4096;

    impl RamFlash {
        fn new(sectors: usize) -> Self {
            Self {
                bytes: vec![0xFF; sectors * SECTOR as usize],
                written: vec![false; sectors * SECTOR as usize],
                erases: 0,
                tear_after: None,
                writes: 0,
            }
        }
    }

    impl ErrorType for RamFlash {
        type Error = FlashError;
    }

    impl ReadNorFlash for RamFlash {
        const READ_SIZE: usize = 4;
        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
            let at = offset as usize;
            if !at.is_multiple_of(4) || !bytes.len().is_multiple_of(4) {
                return Err(FlashError(NorFlashErrorKind::NotAligned));
            }
            let src = self
                .bytes
                .get(at..at + bytes.len())
                .ok_or(FlashError(NorFlashErrorKind::OutOfBounds))?;
            bytes.copy_from_slice(src);
            Ok(())
        }
        fn capacity(&self) -> usize {
            self.bytes.len()
        }
    }

    impl NorFlash for RamFlash {
        const WRITE_SIZE: usize = 4;
        const ERASE_SIZE: usize = SECTOR as usize;
        fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
            if !from.is_multiple_of(SECTOR)
                || !to.is_multiple_of(SECTOR)
                || to as usize > self.bytes.len()
            {
                return Err(FlashError(NorFlashErrorKind::NotAligned));
            }
            self.bytes[from as usize..to as usize].fill(0xFF);
            self.written[from as usize..to as usize].fill(false);
            self.erases += 1;
            Ok(())
        }
        fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
            let at = offset as usize;
            if !at.is_multiple_of(4)
                || !bytes.len().is_multiple_of(4)
                || at + bytes.len() > self.bytes.len()
            {
                return Err(FlashError(NorFlashErrorKind::NotAligned));
            }
            let torn = self.tear_after.is_some_and(|n| self.writes >= n);
            let len = if torn { bytes.len() / 2 } else { bytes.len() };
            for (i, b) in bytes[..len].iter().enumerate() {
                assert!(!self.written[at + i], "byte {} written twice", at + i);
                self.written[at + i] = true;
                self.bytes[at + i] &= b;
            }
            self.writes += 1;
            if torn {
                return Err(FlashError(NorFlashErrorKind::Other));
            }
            Ok(())
        }
    }

    fn record(boot: u32) -> Record {
        Record {
            generation: 0,
            boot,
            origin: 0xDEAD_BEEF,
            calibrations: [Some(Calibration::new(-8_400_123, 0.000_456)), None],
            login: None,
        }
    }

    #[test]
    fn crc_is_the_ieee_one() {
        // The standard check value.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        let c = [Calibration::new(1, 2.0)];
        let mut bytes = Vec::new();
        bytes.extend(1i32.to_le_bytes());
        bytes.extend(2.0f32.to_bits().to_le_bytes());
        assert_eq!(fingerprint(&c), crc32(&bytes));
        assert_ne!(fingerprint(&c), fingerprint(&[Calibration::new(1, 2.5)]));
    }

    #[test]
    fn record_layout() {
        let r = Record {
            generation: 7,
            boot: 0x0102_0304,
            origin: 9,
            calibrations: [None, Some(Calibration::new(-2, 0.5))],
            login: Login::new(b"pw-1"),
        };
        let bytes = r.encode();
        assert_eq!(&bytes[..4], &[b'R', b'P', VERSION, 0b10]);
        assert_eq!(&bytes[4..8], &[7, 0, 0, 0]);
        assert_eq!(&bytes[8..12], &[4, 3, 2, 1]);
        assert_eq!(&bytes[16..24], &[0; 8]);
        assert_eq!(&bytes[24..28], &(-2i32).to_le_bytes());
        assert_eq!(&bytes[28..32], &0.5f32.to_bits().to_le_bytes());
        assert_eq!(&bytes[32..40], &[4, 0, 0, 0, b'p', b'w', b'-', b'1']);
        assert!(bytes[40..100].iter().all(|&b| b == 0));
        assert_eq!(&bytes[100..], &crc32(&bytes[..100]).to_le_bytes());
        assert_eq!(Record::decode(&bytes), Some(r));
    }

    #[test]
    fn bad_records_are_refused() {
        let good = record(3).encode();
        assert!(Record::decode(&good).is_some());
        assert_eq!(Record::decode(&[0xFF; RECORD_LEN]), None);
        assert_eq!(Record::decode(&[0; RECORD_LEN]), None);
        let mut other_version = good;
        other_version[2] = 3;
        assert_eq!(Record::decode(&other_version), None);
        // A calibration with scale 0 or NaN, even with a good CRC.
        for scale in [0.0, f32::NAN, f32::INFINITY] {
            let mut r = record(3);
            r.calibrations[0] = Some(Calibration::new(0, scale));
            assert_eq!(Record::decode(&r.encode()), None, "{scale}");
        }
        // Unknown slot bits.
        let mut bits = good;
        bits[3] |= 0x80;
        let crc = crc32(&bits[..CRC_AT]);
        bits[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Record::decode(&bits), None);
        // A password that is longer than its field, or not visible ASCII, even with a good CRC.
        for (len, byte) in [(65, b'a'), (3, b' '), (3, 0xC3)] {
            let mut bad = record(3).encode();
            bad[32] = len;
            bad[LOGIN_AT..LOGIN_AT + 3].fill(byte);
            let crc = crc32(&bad[..CRC_AT]);
            bad[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(Record::decode(&bad), None, "{len} {byte}");
        }
    }

    #[test]
    fn logins_are_visible_ascii_of_1_to_64_bytes() {
        let agents = b"Jd0_Qx-7a9vK2mW4pL8nB3cR6tY1uE5iO0sD2fG4hJ6";
        assert_eq!(Login::new(agents).map(|l| l.password().len()), Some(43));
        assert_eq!(Login::new(agents).unwrap().password(), agents);
        assert!(Login::new(&[b'x'; LOGIN_MAX]).is_some());
        let long = [b'x'; LOGIN_MAX + 1];
        for bad in [&b""[..], b"with space", b"tab\t", "é".as_bytes(), &long] {
            assert!(Login::new(bad).is_none(), "{bad:?}");
        }
        // Never printed.
        assert_eq!(
            std::format!("{:?}", Login::new(b"secret").unwrap()),
            "Login(..)"
        );
    }

    proptest! {
        #[test]
        fn any_single_bit_flip_is_caught(boot in any::<u32>(), bit in 0usize..RECORD_LEN * 8) {
            let mut bytes = record(boot).encode();
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(Record::decode(&bytes), None);
        }

        #[test]
        fn records_round_trip(
            generation in any::<u32>(),
            boot in any::<u32>(),
            origin in any::<u32>(),
            a in proptest::option::of((any::<i32>(), 1e-6f32..1e3)),
            b in proptest::option::of((any::<i32>(), -1e3f32..-1e-6)),
            password in proptest::option::of("[!-~]{1,64}"),
        ) {
            let r = Record {
                generation,
                boot,
                origin,
                calibrations: [
                    a.map(|(o, s)| Calibration::new(o, s)),
                    b.map(|(o, s)| Calibration::new(o, s)),
                ],
                login: password.as_deref().and_then(|p| Login::new(p.as_bytes())),
            };
            prop_assert_eq!(r.login.is_some(), password.is_some());
            prop_assert_eq!(Record::decode(&r.encode()), Some(r));
        }
    }

    #[test]
    fn newest_is_the_highest_generation() {
        let mut a = record(1);
        a.generation = 5;
        let mut b = record(2);
        b.generation = 9;
        assert_eq!(newest([a, b]), Some(b));
        assert_eq!(newest([b, a]), Some(b));
        assert_eq!(newest([]), None);
    }

    #[test]
    fn empty_flash_then_boots() {
        let mut flash = RamFlash::new(3);
        let (mut journal, stored) = Journal::open(&mut flash, SECTOR, SECTOR).unwrap();
        assert_eq!(stored, None);
        for boot in 1..=5 {
            let (mut j, stored) = Journal::open(&mut flash, SECTOR, SECTOR).unwrap();
            assert_eq!(j, journal);
            let next = stored.map_or(1, |r| r.boot + 1);
            assert_eq!(next, boot);
            let mut r = record(next);
            j.save(&mut flash, &mut r).unwrap();
            assert_eq!(r.generation, boot);
            journal = j;
        }
        // One erase (the first sector, at the first save); nothing outside the two sectors.
        assert_eq!(flash.erases, 1);
        assert!(flash.bytes[..SECTOR as usize].iter().all(|&b| b == 0xFF));
        assert!(
            flash.bytes[3 * SECTOR as usize - 4..]
                .iter()
                .all(|&b| b == 0xFF)
        );
        let (_, stored) = Journal::open(&mut flash, SECTOR, SECTOR).unwrap();
        assert_eq!(stored.map(|r| (r.boot, r.generation)), Some((5, 5)));
    }

    #[test]
    fn sectors_alternate_when_full() {
        let per_sector = SECTOR as usize / RECORD_LEN;
        let mut flash = RamFlash::new(2);
        let (mut journal, _) = Journal::open(&mut flash, 0, SECTOR).unwrap();
        let total = 3 * per_sector + 7;
        for boot in 1..=total as u32 {
            let mut r = record(boot);
            journal.save(&mut flash, &mut r).unwrap();
            // Reopening at any point finds the newest.
            if boot % 50 == 0 {
                let (j, stored) = Journal::open(&mut flash, 0, SECTOR).unwrap();
                assert_eq!(stored.map(|r| r.boot), Some(boot));
                assert_eq!(j, journal);
            }
        }
        // One erase per sector's worth of records.
        assert_eq!(flash.erases, 4);
        let (_, stored) = Journal::open(&mut flash, 0, SECTOR).unwrap();
        assert_eq!(stored.map(|r| r.boot), Some(total as u32));
    }

    #[test]
    fn a_torn_write_keeps_the_record_before() {
        let mut flash = RamFlash::new(2);
        let (mut journal, _) = Journal::open(&mut flash, 0, SECTOR).unwrap();
        for boot in 1..=3 {
            journal.save(&mut flash, &mut record(boot)).unwrap();
        }
        flash.tear_after = Some(flash.writes);
        assert!(matches!(
            journal.save(&mut flash, &mut record(4)),
            Err(Error::Flash(_))
        ));
        flash.tear_after = None;
        // After the power cut: boot 3 stands, and the next record goes after the torn one.
        let (mut journal, stored) = Journal::open(&mut flash, 0, SECTOR).unwrap();
        assert_eq!(stored.map(|r| r.boot), Some(3));
        journal.save(&mut flash, &mut record(4)).unwrap();
        let (_, stored) = Journal::open(&mut flash, 0, SECTOR).unwrap();
        assert_eq!(stored.map(|r| (r.boot, r.generation)), Some((4, 4)));
    }

    #[test]
    fn a_journal_that_does_not_fit_is_refused() {
        let mut flash = RamFlash::new(1);
        assert_eq!(
            Journal::open(&mut flash, 0, SECTOR).map(|_| ()),
            Err(Error::Geometry)
        );
        let mut flash = RamFlash::new(2);
        assert_eq!(
            Journal::open(&mut flash, 0, 16).map(|_| ()),
            Err(Error::Geometry)
        );
    }

    /// A format 1 record as the firmware of 2026-12-04 wrote it.
    fn v1_record(generation: u32, boot: u32) -> [u8; V1_RECORD_LEN] {
        let mut out = [0u8; V1_RECORD_LEN];
        out[0..2].copy_from_slice(b"RP");
        out[2] = 1;
        out[3] = 0b01;
        out[4..8].copy_from_slice(&generation.to_le_bytes());
        out[8..12].copy_from_slice(&boot.to_le_bytes());
        out[12..16].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        out[16..20].copy_from_slice(&(-8_400_123i32).to_le_bytes());
        out[20..24].copy_from_slice(&0.000_456f32.to_bits().to_le_bytes());
        let crc = crc32(&out[..32]);
        out[32..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn a_format_1_journal_is_carried_on() {
        let mut flash = RamFlash::new(2);
        // Sector 1 holds format 1 records of boots 1..=5 (generations 11..=15).
        for (i, boot) in (1..=5u32).enumerate() {
            let at = SECTOR as usize + i * V1_RECORD_LEN;
            flash.bytes[at..at + V1_RECORD_LEN].copy_from_slice(&v1_record(10 + boot, boot));
        }
        let (mut journal, stored) = Journal::open(&mut flash, 0, SECTOR).unwrap();
        let mut stored = stored.unwrap();
        assert_eq!((stored.boot, stored.generation), (5, 15));
        assert_eq!(stored.calibrations, record(5).calibrations);
        assert_eq!(stored.login, None);
        // The next boot, with a login: written to sector 0, sector 1 left as it was.
        let before = flash.bytes[SECTOR as usize..].to_vec();
        stored.boot = 6;
        stored.login = Login::new(b"given-at-pairing");
        journal.save(&mut flash, &mut stored).unwrap();
        assert_eq!(flash.bytes[SECTOR as usize..], before[..]);
        assert_eq!(
            Record::decode(flash.bytes[..RECORD_LEN].try_into().unwrap()),
            Some(stored)
        );
        let (_, reopened) = Journal::open(&mut flash, 0, SECTOR).unwrap();
        let reopened = reopened.unwrap();
        assert_eq!((reopened.boot, reopened.generation), (6, 16));
        assert_eq!(
            reopened.login.map(|l| l.password() == b"given-at-pairing"),
            Some(true)
        );
        assert_eq!(reopened.calibrations, record(5).calibrations);
    }

    #[test]
    fn a_torn_format_1_record_leaves_the_one_before() {
        let mut flash = RamFlash::new(2);
        flash.bytes[..V1_RECORD_LEN].copy_from_slice(&v1_record(1, 1));
        let mut torn = v1_record(2, 2);
        torn[20..].fill(0xFF);
        flash.bytes[V1_RECORD_LEN..2 * V1_RECORD_LEN].copy_from_slice(&torn);
        let (_, stored) = Journal::open(&mut flash, 0, SECTOR).unwrap();
        assert_eq!(stored.map(|r| r.boot), Some(1));
    }
}
