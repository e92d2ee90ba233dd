//! Tank geometry: from the distance a time-of-flight sensor measures to the liquid surface, to
//! the millilitres in the tank.
//!
//! The sensor sits above the liquid, looking straight down. The liquid's height is the distance
//! to the bottom (the reading of the empty tank) minus the reading; its volume follows from the
//! tank's cross-section, constant for upright cylinders and boxes, or a measured table of
//! heights and volumes for any other shape (a coffee machine's moulded water tank).
//!
//! ```
//! use replenish_firmware::tank::TankGeometry;
//!
//! // An upright cylinder of 100 mm inside diameter; the sensor reads 250 mm on the empty
//! // bottom and 50 mm at the fill line.
//! let tank = TankGeometry::cylinder(100.0, 250.0, 50.0).unwrap();
//! assert!((tank.capacity_ml() - 1570.8).abs() < 0.1); // π · 50² · 200 mm³
//! assert!((tank.level_ml(150.0) - 785.4).abs() < 0.1); // half full
//! assert_eq!(tank.level_ml(400.0), 0.0); // a reading beyond the bottom: empty
//! ```
//!
//! Pure and allocation-free: no `sqrt` or trigonometry (unavailable in `core`), so a lying
//! cylinder or a cone is described by a [table](TankGeometry::table).

use core::f32::consts::PI;

/// Most points of a [table](TankGeometry::table).
pub const MAX_TABLE_POINTS: usize = 16;

/// Why a tank geometry was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TankError {
    /// Distances must be finite, not negative, and the empty reading larger than the full one.
    #[error("the empty distance must be finite and larger than the full distance (>= 0)")]
    BadDistances,
    /// A dimension or an area must be finite and greater than zero.
    #[error("tank dimensions must be finite and greater than zero")]
    BadDimension,
    /// A table needs 2 to [`MAX_TABLE_POINTS`] finite points, starting at height 0, with heights
    /// strictly and volumes weakly increasing, reaching the full height.
    #[error(
        "a volume table needs 2 to 16 points from height 0 to the full height, heights strictly \
         and volumes weakly increasing"
    )]
    BadTable,
}

/// How the volume grows with the height of the liquid.
#[derive(Debug, Clone, PartialEq)]
pub enum TankShape {
    /// A constant horizontal cross-section (upright cylinder, box), in mm².
    Prism {
        /// The cross-section, in mm².
        area_mm2: f32,
    },
    /// Measured `(height mm, volume ml)` points, interpolated linearly.
    Table(heapless::Vec<(f32, f32), MAX_TABLE_POINTS>),
}

/// A tank as a distance sensor on its lid sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TankGeometry {
    empty_mm: f32,
    full_mm: f32,
    shape: TankShape,
}

impl TankGeometry {
    /// A tank of constant cross-section `area_mm2`; the sensor reads `empty_mm` on the empty
    /// bottom and `full_mm` at the fill line (keep it beyond the sensor's minimum range, about
    /// 30 mm for a VL53L0X).
    pub fn prism(area_mm2: f32, empty_mm: f32, full_mm: f32) -> Result<Self, TankError> {
        if !positive(area_mm2) {
            return Err(TankError::BadDimension);
        }
        check_distances(empty_mm, full_mm)?;
        Ok(Self {
            empty_mm,
            full_mm,
            shape: TankShape::Prism { area_mm2 },
        })
    }

    /// An upright cylinder of inside diameter `diameter_mm`.
    pub fn cylinder(diameter_mm: f32, empty_mm: f32, full_mm: f32) -> Result<Self, TankError> {
        if !positive(diameter_mm) {
            return Err(TankError::BadDimension);
        }
        Self::prism(PI * diameter_mm * diameter_mm / 4.0, empty_mm, full_mm)
    }

    /// An upright box of inside `width_mm` × `depth_mm`.
    pub fn rectangular(
        width_mm: f32,
        depth_mm: f32,
        empty_mm: f32,
        full_mm: f32,
    ) -> Result<Self, TankError> {
        if !positive(width_mm) || !positive(depth_mm) {
            return Err(TankError::BadDimension);
        }
        Self::prism(width_mm * depth_mm, empty_mm, full_mm)
    }

    /// A tank of any shape, from `(height mm, volume ml)` points measured by filling it step by
    /// step: the first at height 0, the last at the full height (`empty_mm - full_mm`).
    pub fn table(points: &[(f32, f32)], empty_mm: f32, full_mm: f32) -> Result<Self, TankError> {
        check_distances(empty_mm, full_mm)?;
        let ok = points.len() >= 2
            && points
                .iter()
                .all(|&(h, v)| h.is_finite() && v.is_finite() && v >= 0.0)
            && points[0].0 == 0.0
            && points
                .windows(2)
                .all(|w| w[1].0 > w[0].0 && w[1].1 >= w[0].1)
            && points
                .last()
                .is_some_and(|&(h, _)| (h - (empty_mm - full_mm)).abs() <= 0.5);
        let table = heapless::Vec::from_slice(points).map_err(|_| TankError::BadTable)?;
        if !ok {
            return Err(TankError::BadTable);
        }
        Ok(Self {
            empty_mm,
            full_mm,
            shape: TankShape::Table(table),
        })
    }

    /// The sensor's reading on the empty bottom, in mm.
    pub fn empty_mm(&self) -> f32 {
        self.empty_mm
    }

    /// The sensor's reading at the fill line, in mm.
    pub fn full_mm(&self) -> f32 {
        self.full_mm
    }

    /// The shape.
    pub fn shape(&self) -> &TankShape {
        &self.shape
    }

    /// The height of liquid for a reading, in mm, within `0..=` the full height. A reading past
    /// the bottom counts as empty, one above the fill line as full.
    pub fn height_mm(&self, distance_mm: f32) -> f32 {
        let full_height = self.empty_mm - self.full_mm;
        if distance_mm.is_nan() {
            return 0.0;
        }
        // Not `clamp`: its NaN assertion would pull float formatting into the image.
        (self.empty_mm - distance_mm).max(0.0).min(full_height)
    }

    /// The volume of liquid for a reading, in ml (1 ml = 1000 mm³).
    pub fn level_ml(&self, distance_mm: f32) -> f32 {
        self.volume_ml(self.height_mm(distance_mm))
    }

    /// The volume when filled to the fill line, in ml.
    pub fn capacity_ml(&self) -> f32 {
        self.volume_ml(self.empty_mm - self.full_mm)
    }

    fn volume_ml(&self, height_mm: f32) -> f32 {
        match &self.shape {
            TankShape::Prism { area_mm2 } => area_mm2 * height_mm / 1000.0,
            TankShape::Table(points) => interpolate(points, height_mm),
        }
    }
}

fn positive(x: f32) -> bool {
    x.is_finite() && x > 0.0
}

fn check_distances(empty_mm: f32, full_mm: f32) -> Result<(), TankError> {
    if empty_mm.is_finite() && full_mm.is_finite() && full_mm >= 0.0 && empty_mm > full_mm {
        Ok(())
    } else {
        Err(TankError::BadDistances)
    }
}

/// Linear interpolation in a table of increasing heights, clamped to its ends.
fn interpolate(points: &[(f32, f32)], h: f32) -> f32 {
    let mut previous = match points.first() {
        Some(&p) => p,
        None => return 0.0,
    };
    if h <= previous.0 {
        return previous.1;
    }
    for &(h1, v1) in &points[1..] {
        if h <= h1 {
            let (h0, v0) = previous;
            return v0 + (v1 - v0) * (h - h0) / (h1 - h0);
        }
        previous = (h1, v1);
    }
    previous.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-3 * b.abs().max(1.0)
    }

    #[test]
    fn box_volumes() {
        // 100 × 80 mm, 150 mm of usable height: 1.2 l.
        let tank = TankGeometry::rectangular(100.0, 80.0, 180.0, 30.0).unwrap();
        assert!(close(tank.capacity_ml(), 1200.0));
        assert!(close(tank.level_ml(30.0), 1200.0));
        assert!(close(tank.level_ml(105.0), 600.0));
        assert!(close(tank.level_ml(180.0), 0.0));
        // Clamped at both ends.
        assert!(close(tank.level_ml(10.0), 1200.0));
        assert_eq!(tank.level_ml(8190.0), 0.0);
        assert_eq!(tank.level_ml(f32::NAN), 0.0);
        assert_eq!(tank.height_mm(100.0), 80.0);
        assert_eq!((tank.empty_mm(), tank.full_mm()), (180.0, 30.0));
        assert_eq!(tank.shape(), &TankShape::Prism { area_mm2: 8000.0 });
    }

    #[test]
    fn cylinder_area() {
        let tank = TankGeometry::cylinder(200.0, 1000.0, 0.0).unwrap();
        // π · 100² mm² · 1000 mm = 31.4159 l.
        assert!(close(tank.capacity_ml(), 31_415.93));
    }

    #[test]
    fn table_interpolates() {
        // A tank narrow at the bottom: 100 ml in the first 20 mm, 400 ml in the next 20.
        let points = [(0.0, 0.0), (20.0, 100.0), (40.0, 500.0)];
        let tank = TankGeometry::table(&points, 100.0, 60.0).unwrap();
        assert!(close(tank.capacity_ml(), 500.0));
        assert!(close(tank.level_ml(90.0), 50.0));
        assert!(close(tank.level_ml(80.0), 100.0));
        assert!(close(tank.level_ml(70.0), 300.0));
        assert!(close(tank.level_ml(0.0), 500.0));
        assert!(close(tank.level_ml(200.0), 0.0));
        assert!(close(interpolate(&points, 45.0), 500.0));
        assert_eq!(interpolate(&[], 1.0), 0.0);
    }

    #[test]
    fn bad_geometry_is_refused() {
        use TankError::*;
        assert_eq!(TankGeometry::cylinder(0.0, 100.0, 10.0), Err(BadDimension));
        assert_eq!(
            TankGeometry::cylinder(f32::NAN, 100.0, 10.0),
            Err(BadDimension)
        );
        assert_eq!(
            TankGeometry::rectangular(10.0, -1.0, 100.0, 10.0),
            Err(BadDimension)
        );
        assert_eq!(
            TankGeometry::prism(f32::INFINITY, 100.0, 10.0),
            Err(BadDimension)
        );
        assert_eq!(TankGeometry::prism(1.0, 10.0, 10.0), Err(BadDistances));
        assert_eq!(TankGeometry::prism(1.0, 10.0, -1.0), Err(BadDistances));
        assert_eq!(TankGeometry::prism(1.0, f32::NAN, 1.0), Err(BadDistances));
        let table = |points: &[(f32, f32)]| TankGeometry::table(points, 100.0, 60.0);
        assert_eq!(table(&[(0.0, 0.0)]), Err(BadTable));
        assert_eq!(table(&[(1.0, 0.0), (40.0, 1.0)]), Err(BadTable));
        assert_eq!(
            table(&[(0.0, 0.0), (30.0, 1.0)]),
            Err(BadTable),
            "short of full"
        );
        assert_eq!(
            table(&[(0.0, 5.0), (40.0, 1.0)]),
            Err(BadTable),
            "volume falls"
        );
        assert_eq!(
            table(&[(0.0, 0.0), (20.0, 1.0), (20.0, 2.0), (40.0, 3.0)]),
            Err(BadTable)
        );
        assert_eq!(table(&[(0.0, 0.0), (40.0, f32::NAN)]), Err(BadTable));
        assert_eq!(table(&[(0.0, 0.0); 17]), Err(BadTable));
        assert_eq!(
            TankGeometry::table(&[(0.0, 0.0), (40.0, 1.0)], 10.0, 60.0),
            Err(BadDistances)
        );
    }

    proptest! {
        /// Closer surface, more liquid; never below 0 or above the capacity.
        #[test]
        fn level_is_monotonic_and_bounded(
            a in -100.0f32..2000.0,
            b in -100.0f32..2000.0,
            diameter in 10.0f32..500.0,
            empty in 100.0f32..1500.0,
            full in 0.0f32..90.0,
        ) {
            let tank = TankGeometry::cylinder(diameter, empty, full).unwrap();
            let (near, far) = if a <= b { (a, b) } else { (b, a) };
            let (v_near, v_far) = (tank.level_ml(near), tank.level_ml(far));
            prop_assert!(v_near >= v_far);
            prop_assert!(v_far >= 0.0);
            prop_assert!(v_near <= tank.capacity_ml());
        }
    }
}
