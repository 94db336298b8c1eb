//! The table's pixel grid and how each scene sits on it.
//!
//! Scenes of one footprint often differ in extent by whole pixels (Landsat
//! does). Scenes on the grid's CRS and pixel size, with an origin a whole
//! number of pixels away, are *aligned*: read with an offset window, never
//! resampled. Everything else (another CRS, pixel size or sub-pixel origin,
//! a rotated file, a 20 m Sentinel-2 band on a 10 m grid) is *warped* onto the
//! grid through a GDAL warped VRT. Without options the grid is the one most
//! scenes share (CRS, pixel size, origin modulo pixel size), over the union of
//! those scenes; `crs` / `resolution` / `bbox` set it explicitly. The grid is
//! fixed when the table is created, whatever later queries filter.

use std::collections::BTreeMap;

use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use serde::{Deserialize, Serialize};

use crate::archive::{Band, Scene};
use crate::error::{Result, SceneError};
use crate::options::SceneOptions;
use crate::pixels::RasterGeom;
use crate::raster;

/// A north-up pixel grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub crs_wkt: String,
    /// `EPSG:nnnn` where GDAL identifies the CRS.
    pub crs_key: String,
    /// GDAL geotransform (x0, dx, 0, y0, 0, dy) with dy < 0.
    pub gt: [f64; 6],
    pub width: usize,
    pub height: usize,
}

impl Grid {
    /// x of the centre of column `col`.
    pub fn x(&self, col: i64) -> f64 {
        self.gt[0] + (col as f64 + 0.5) * self.gt[1]
    }
    /// y of the centre of row `row`.
    pub fn y(&self, row: i64) -> f64 {
        self.gt[3] + (row as f64 + 0.5) * self.gt[5]
    }
    pub fn pixels(&self) -> i64 {
        (self.width * self.height) as i64
    }
    pub fn window(&self) -> Window {
        Window {
            row: 0,
            col: 0,
            rows: self.height,
            cols: self.width,
        }
    }
    /// The grid as JSON, stored as Parquet key-value metadata `sceneql.grid`.
    pub fn metadata_json(&self) -> String {
        serde_json::json!({
            "crs_wkt": self.crs_wkt,
            "crs": self.crs_key,
            "geotransform": self.gt,
            "width": self.width,
            "height": self.height,
            "pixel": "row * width + col",
        })
        .to_string()
    }
}

/// A rectangle of grid pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub row: i64,
    pub col: i64,
    pub rows: usize,
    pub cols: usize,
}

impl Window {
    pub fn is_empty(&self) -> bool {
        self.rows == 0 || self.cols == 0
    }
    pub fn intersect(&self, o: &Window) -> Window {
        let r0 = self.row.max(o.row);
        let c0 = self.col.max(o.col);
        let r1 = (self.row + self.rows as i64).min(o.row + o.rows as i64);
        let c1 = (self.col + self.cols as i64).min(o.col + o.cols as i64);
        Window {
            row: r0,
            col: c0,
            rows: (r1 - r0).max(0) as usize,
            cols: (c1 - c0).max(0) as usize,
        }
    }
    pub fn row_end(&self) -> i64 {
        self.row + self.rows as i64
    }
    pub fn col_end(&self) -> i64 {
        self.col + self.cols as i64
    }
    /// The row-major offset in this window of grid pixel number `pixel`
    /// (`row * width + col` on a grid `width` pixels wide), if inside.
    pub fn offset_of(&self, pixel: i64, width: i64) -> Option<usize> {
        let (row, col) = (pixel.div_euclid(width), pixel.rem_euclid(width));
        let inside = row >= self.row && row < self.row_end() && col >= self.col;
        (inside && col < self.col_end())
            .then(|| (row - self.row) as usize * self.cols + (col - self.col) as usize)
    }
}

/// How one band file is read onto the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Placement {
    /// File pixel (0, 0) is grid pixel (row_off, col_off): an offset read.
    Aligned { row_off: i64, col_off: i64 },
    /// Warped onto the scene's footprint window (VRT pixel (0, 0) is the
    /// window's top-left pixel).
    Warped,
}

/// Where a scene has pixels on the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Footprint {
    /// Bounding window, clipped to the grid (may be empty).
    pub window: Window,
    /// For warped scenes, the outline in grid pixel coordinates (col, row);
    /// a pixel belongs to the scene when its centre is inside.
    pub polygon: Option<Vec<(f64, f64)>>,
}

impl Footprint {
    /// Columns `[c0, c1)` of `row` inside the footprint.
    pub fn row_span(&self, row: i64) -> Option<(i64, i64)> {
        if row < self.window.row || row >= self.window.row_end() || self.window.cols == 0 {
            return None;
        }
        let (w0, w1) = (self.window.col, self.window.col_end());
        let Some(poly) = &self.polygon else {
            return Some((w0, w1));
        };
        let y = row as f64 + 0.5;
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for i in 0..poly.len() {
            let (x0, y0) = poly[i];
            let (x1, y1) = poly[(i + 1) % poly.len()];
            if (y0 <= y && y < y1) || (y1 <= y && y < y0) {
                let x = x0 + (y - y0) * (x1 - x0) / (y1 - y0);
                lo = lo.min(x);
                hi = hi.max(x);
            }
        }
        if lo > hi {
            return None;
        }
        let c0 = ((lo - 0.5).ceil() as i64).max(w0);
        let c1 = ((hi - 0.5).ceil() as i64).min(w1);
        (c0 < c1).then_some((c0, c1))
    }

    /// Number of grid pixels inside the footprint.
    pub fn pixel_count(&self) -> u64 {
        (self.window.row..self.window.row_end())
            .filter_map(|r| self.row_span(r))
            .map(|(a, b)| (b - a) as u64)
            .sum()
    }
}

/// A scene placed on the grid: its footprint and how each band is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenePlacement {
    pub footprint: Footprint,
    pub bands: BTreeMap<String, Placement>,
}

const EPS: f64 = 1e-6;

fn is_north_up(g: &RasterGeom) -> bool {
    g.gt[2] == 0.0 && g.gt[4] == 0.0 && g.gt[1] > 0.0 && g.gt[5] < 0.0
}

/// `v` modulo `m` in [0, m), with values within EPS pixels of m folded to 0.
fn modulo(v: f64, m: f64) -> f64 {
    let r = v.rem_euclid(m);
    if (m - r) / m < EPS || r / m < EPS {
        0.0
    } else {
        r
    }
}

/// The lattice a file's pixels lie on: CRS, pixel size and origin modulo pixel size.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
struct Lattice {
    crs: String,
    dx: f64,
    dy: f64,
    ox: f64,
    oy: f64,
}

impl Lattice {
    fn of(g: &RasterGeom) -> Option<Lattice> {
        is_north_up(g).then(|| Lattice {
            crs: g.crs_key.clone(),
            dx: g.gt[1],
            dy: -g.gt[5],
            ox: modulo(g.gt[0], g.gt[1]),
            oy: modulo(g.gt[3], -g.gt[5]),
        })
    }
    fn same(&self, o: &Lattice) -> bool {
        let close = |a: f64, b: f64, unit: f64| (a - b).abs() <= EPS * unit;
        self.crs == o.crs
            && close(self.dx, o.dx, self.dx)
            && close(self.dy, o.dy, self.dy)
            && (close(self.ox, o.ox, self.dx) || close((self.ox - o.ox).abs(), self.dx, self.dx))
            && (close(self.oy, o.oy, self.dy) || close((self.oy - o.oy).abs(), self.dy, self.dy))
    }
    fn describe(&self) -> String {
        format!(
            "{} at {} x {} (origin offset {}, {})",
            self.crs, self.dx, self.dy, self.ox, self.oy
        )
    }
}

fn srs(wkt: &str) -> Result<SpatialRef> {
    let mut s = SpatialRef::from_wkt(wkt).map_err(|e| SceneError::Geometry {
        path: "<crs>".into(),
        message: e.to_string(),
    })?;
    s.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    Ok(s)
}

/// Bounds (minx, miny, maxx, maxy) of a file in its own CRS.
fn bounds(g: &RasterGeom) -> [f64; 4] {
    let corners = [
        (0.0, 0.0),
        (g.width as f64, 0.0),
        (0.0, g.height as f64),
        (g.width as f64, g.height as f64),
    ];
    let pts: Vec<(f64, f64)> = corners.iter().map(|&(c, r)| geo(g, c, r)).collect();
    let (mut b0, mut b1, mut b2, mut b3) = (
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, y) in pts {
        b0 = b0.min(x);
        b1 = b1.min(y);
        b2 = b2.max(x);
        b3 = b3.max(y);
    }
    [b0, b1, b2, b3]
}

/// Georeferenced coordinates of file pixel position (col, row).
fn geo(g: &RasterGeom, col: f64, row: f64) -> (f64, f64) {
    (
        g.gt[0] + col * g.gt[1] + row * g.gt[2],
        g.gt[3] + col * g.gt[4] + row * g.gt[5],
    )
}

/// Transform bounds between CRSs (densified edges).
fn transform_bounds(b: [f64; 4], from_wkt: &str, to_wkt: &str, path: &str) -> Result<[f64; 4]> {
    let t =
        CoordTransform::new(&srs(from_wkt)?, &srs(to_wkt)?).map_err(|e| SceneError::Geometry {
            path: path.into(),
            message: format!("no transformation to the target CRS: {e}"),
        })?;
    t.transform_bounds(&b, 21)
        .map_err(|e| SceneError::Geometry {
            path: path.into(),
            message: format!("cannot transform its bounds to the target CRS: {e}"),
        })
}

/// Choose the table's grid from the scenes and the options.
pub fn choose_grid(scenes: &[Scene], opts: &SceneOptions) -> Result<Grid> {
    // Group scenes by the lattice of their reference band.
    let mut groups: Vec<(Lattice, Vec<&Scene>)> = Vec::new();
    for s in scenes {
        let Some(l) = Lattice::of(&s.reference_band().geom) else {
            continue;
        };
        match groups.iter_mut().find(|(g, _)| g.same(&l)) {
            Some((_, v)) => v.push(s),
            None => groups.push((l, vec![s])),
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.1.len()));
    let dominant = match groups.as_slice() {
        [] => None,
        [only] => Some(only),
        [first, second, ..] if first.1.len() > second.1.len() => Some(first),
        _ => None,
    };
    let explicit = opts.crs.is_some() || opts.resolution.is_some();
    if !explicit {
        let Some((lat, members)) = dominant else {
            let detail = if groups.is_empty() {
                "no scene is north-up".to_string()
            } else {
                groups
                    .iter()
                    .map(|(l, v)| format!("{} scenes on {}", v.len(), l.describe()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(SceneError::NoDominantGrid { detail });
        };
        let wkt = members[0].reference_band().geom.crs_wkt.clone();
        let extent = union(members.iter().map(|s| bounds(&s.reference_band().geom)));
        let b = match opts.bbox {
            Some(b) => user_bbox(b, opts, &wkt, extent)?,
            None => extent,
        };
        return checked(
            snap(wkt, lat.crs.clone(), (lat.dx, lat.dy), (lat.ox, lat.oy), b),
            opts,
        );
    }
    // Explicit CRS and/or resolution.
    let (wkt, crs) = match &opts.crs {
        Some(text) => {
            let wkt = raster::user_crs_wkt(text)?;
            let key = crate::crs_cache::crs_key(&wkt);
            (wkt, key)
        }
        None => {
            let (l, v) = dominant.ok_or_else(|| SceneError::NoDominantGrid {
                detail: "'resolution' is set but scenes have no common CRS".into(),
            })?;
            (v[0].reference_band().geom.crs_wkt.clone(), l.crs.clone())
        }
    };
    // The most common lattice in the target CRS gives resolution and origin defaults.
    let native = groups
        .iter()
        .find(|(l, _)| l.crs == crs)
        .map(|(l, _)| l.clone());
    let res = match (opts.resolution, &native) {
        (Some(r), _) => r,
        (None, Some(l)) => (l.dx, l.dy),
        (None, None) => {
            return Err(SceneError::BadOption {
                key: "crs".into(),
                value: opts.crs.clone().unwrap_or_default(),
                reason:
                    "no scene is in this CRS, so the pixel size is unknown: also set 'resolution'"
                        .into(),
            });
        }
    };
    let origin = match &native {
        Some(l) if (l.dx - res.0).abs() <= EPS * res.0 && (l.dy - res.1).abs() <= EPS * res.1 => {
            (l.ox, l.oy)
        }
        _ => (0.0, 0.0),
    };
    let extent = {
        let mut all = Vec::new();
        for s in scenes {
            let g = &s.reference_band().geom;
            all.push(if g.crs_key == crs {
                bounds(g)
            } else {
                transform_bounds(bounds(g), &g.crs_wkt, &wkt, &s.reference_band().path)?
            });
        }
        union(all.into_iter())
    };
    let b = match opts.bbox {
        Some(b) => user_bbox(b, opts, &wkt, extent)?,
        None => extent,
    };
    checked(snap(wkt, crs, res, origin, b), opts)
}

/// The user's `bbox` in the grid's CRS; an error when it does not overlap
/// the scenes' `extent` (a swapped lon/lat gave an empty table).
fn user_bbox(
    b: [f64; 4],
    opts: &SceneOptions,
    target_wkt: &str,
    extent: [f64; 4],
) -> Result<[f64; 4]> {
    let in_grid = match &opts.bbox_crs {
        None => b,
        Some(c) => {
            let from = raster::user_crs_wkt(c).map_err(|_| SceneError::BadOption {
                key: "bbox_crs".into(),
                value: c.clone(),
                reason: "GDAL cannot parse it; use e.g. 'EPSG:4326'".into(),
            })?;
            transform_bounds(b, &from, target_wkt, "bbox")?
        }
    };
    let overlaps = in_grid[0] < extent[2]
        && extent[0] < in_grid[2]
        && in_grid[1] < extent[3]
        && extent[1] < in_grid[3];
    if !overlaps {
        let show = |v: [f64; 4]| format!("{:.6},{:.6},{:.6},{:.6}", v[0], v[1], v[2], v[3]);
        return Err(SceneError::BadOption {
            key: "bbox".into(),
            value: show(b),
            reason: format!(
                "it does not overlap the scenes, which cover {} in the grid's CRS{}; bbox is 'minx,miny,maxx,maxy' (x before y: lon before lat), in the grid's CRS unless 'bbox_crs' names another (e.g. 'EPSG:4326')",
                show(extent),
                match &opts.bbox_crs {
                    Some(c) => format!(" (the bbox in {c} is {} there)", show(in_grid)),
                    None => String::new(),
                }
            ),
        });
    }
    Ok(in_grid)
}

/// The grid, unless it is too large (more than `max_grid_pixels`) or too
/// small (under 2 pixels) to be meant: checked before any data is read.
fn checked(grid: Grid, opts: &SceneOptions) -> Result<Grid> {
    let pixels = grid.width as u64 * grid.height as u64;
    let max = opts.max_grid_pixels();
    if pixels <= max && pixels >= 2 {
        return Ok(grid);
    }
    let unit = SpatialRef::from_wkt(&grid.crs_wkt)
        .ok()
        .map(|s| {
            if s.is_geographic() {
                "degrees".to_string()
            } else {
                s.linear_units_name().unwrap_or_else(|| "metre".into())
            }
        })
        .unwrap_or_else(|| "the CRS's unit".into());
    let size = format!(
        "{} x {} = {pixels} pixels of {} x {} {unit}",
        grid.width, grid.height, grid.gt[1], -grid.gt[5]
    );
    let reason = if pixels > max {
        format!(
            "the grid would be {size}, more than max_grid_pixels ({max}): give a coarser 'resolution' (in {unit}), a smaller 'bbox', or raise OPTIONS ('max_grid_pixels' ...)"
        )
    } else {
        format!(
            "the grid would be {size}: a 'resolution' (in {unit}) larger than the scenes, or a 'bbox' smaller than a pixel"
        )
    };
    Err(SceneError::BadOption {
        key: match (opts.resolution, opts.bbox) {
            (Some(_), _) => "resolution".into(),
            (None, Some(_)) => "bbox".into(),
            (None, None) => "max_grid_pixels".into(),
        },
        value: match (opts.resolution, opts.bbox) {
            (Some((rx, ry)), _) => format!("{rx},{ry}"),
            (None, Some(b)) => format!("{},{},{},{}", b[0], b[1], b[2], b[3]),
            (None, None) => max.to_string(),
        },
        reason,
    })
}

fn union(it: impl Iterator<Item = [f64; 4]>) -> [f64; 4] {
    it.fold(
        [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ],
        |a, b| {
            [
                a[0].min(b[0]),
                a[1].min(b[1]),
                a[2].max(b[2]),
                a[3].max(b[3]),
            ]
        },
    )
}

/// Snap bounds outward onto the lattice with origin offset `o` and pixel size `res`.
fn snap(crs_wkt: String, crs_key: String, res: (f64, f64), o: (f64, f64), b: [f64; 4]) -> Grid {
    let (dx, dy) = res;
    let x0 = o.0 + ((b[0] - o.0) / dx + EPS).floor() * dx;
    let x1 = o.0 + ((b[2] - o.0) / dx - EPS).ceil() * dx;
    let y0 = o.1 + ((b[3] - o.1) / dy - EPS).ceil() * dy;
    let y1 = o.1 + ((b[1] - o.1) / dy + EPS).floor() * dy;
    let width = ((x1 - x0) / dx).round().max(0.0) as usize;
    let height = ((y0 - y1) / dy).round().max(0.0) as usize;
    Grid {
        crs_wkt,
        crs_key,
        gt: [x0, dx, 0.0, y0, 0.0, -dy],
        width,
        height,
    }
}

/// How a band file is read onto the grid.
fn placement(g: &RasterGeom, grid: &Grid) -> Placement {
    if is_north_up(g) && g.crs_key == grid.crs_key {
        let (dx, dy) = (grid.gt[1], -grid.gt[5]);
        let col = (g.gt[0] - grid.gt[0]) / dx;
        let row = (grid.gt[3] - g.gt[3]) / dy;
        let whole = |v: f64| (v - v.round()).abs() < EPS;
        if (g.gt[1] - dx).abs() <= EPS * dx
            && (-g.gt[5] - dy).abs() <= EPS * dy
            && whole(col)
            && whole(row)
        {
            return Placement::Aligned {
                row_off: row.round() as i64,
                col_off: col.round() as i64,
            };
        }
    }
    Placement::Warped
}

/// Place every scene on the grid.
pub fn place_scenes(scenes: &[Scene], grid: &Grid) -> Result<Vec<ScenePlacement>> {
    scenes.iter().map(|s| place_scene(s, grid)).collect()
}

fn place_scene(s: &Scene, grid: &Grid) -> Result<ScenePlacement> {
    let reference = s.reference_band();
    let footprint = footprint(reference, grid)?;
    let bands = s
        .bands
        .iter()
        .map(|(name, b)| (name.clone(), placement(&b.geom, grid)))
        .collect();
    Ok(ScenePlacement { footprint, bands })
}

fn footprint(b: &Band, grid: &Grid) -> Result<Footprint> {
    let g = &b.geom;
    if let Placement::Aligned { row_off, col_off } = placement(g, grid) {
        let w = Window {
            row: row_off,
            col: col_off,
            rows: g.height,
            cols: g.width,
        };
        return Ok(Footprint {
            window: w.intersect(&grid.window()),
            polygon: None,
        });
    }
    // Outline of the file, densified, in grid pixel coordinates.
    const STEPS: usize = 16;
    let (w, h) = (g.width as f64, g.height as f64);
    let mut ring = Vec::with_capacity(4 * STEPS);
    for i in 0..STEPS {
        ring.push((w * i as f64 / STEPS as f64, 0.0));
    }
    for i in 0..STEPS {
        ring.push((w, h * i as f64 / STEPS as f64));
    }
    for i in 0..STEPS {
        ring.push((w - w * i as f64 / STEPS as f64, h));
    }
    for i in 0..STEPS {
        ring.push((0.0, h - h * i as f64 / STEPS as f64));
    }
    let mut xs: Vec<f64> = Vec::with_capacity(ring.len());
    let mut ys: Vec<f64> = Vec::with_capacity(ring.len());
    for &(c, r) in &ring {
        let (x, y) = geo(g, c, r);
        xs.push(x);
        ys.push(y);
    }
    if g.crs_key != grid.crs_key {
        let t = CoordTransform::new(&srs(&g.crs_wkt)?, &srs(&grid.crs_wkt)?).map_err(|e| {
            SceneError::Geometry {
                path: b.path.clone(),
                message: format!("no transformation to the table's CRS: {e}"),
            }
        })?;
        let mut zs = vec![0.0; xs.len()];
        t.transform_coords(&mut xs, &mut ys, &mut zs)
            .map_err(|e| SceneError::Geometry {
                path: b.path.clone(),
                message: format!("cannot transform its outline to the table's CRS: {e}"),
            })?;
    }
    let poly: Vec<(f64, f64)> = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| ((x - grid.gt[0]) / grid.gt[1], (y - grid.gt[3]) / grid.gt[5]))
        .collect();
    let (mut c0, mut r0, mut c1, mut r1) = (
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    );
    for &(c, r) in &poly {
        c0 = c0.min(c);
        r0 = r0.min(r);
        c1 = c1.max(c);
        r1 = r1.max(r);
    }
    let bbox = Window {
        row: r0.floor() as i64,
        col: c0.floor() as i64,
        rows: (r1.ceil() - r0.floor()).max(0.0) as usize,
        cols: (c1.ceil() - c0.floor()).max(0.0) as usize,
    };
    Ok(Footprint {
        window: bbox.intersect(&grid.window()),
        polygon: Some(poly),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygon_spans_take_pixels_whose_centre_is_inside() {
        // A diamond with corners at (5, 0), (10, 5), (5, 10), (0, 5).
        let f = Footprint {
            window: Window {
                row: 0,
                col: 0,
                rows: 10,
                cols: 10,
            },
            polygon: Some(vec![(5.0, 0.0), (10.0, 5.0), (5.0, 10.0), (0.0, 5.0)]),
        };
        // Row 0 centre y = 0.5: x in [4.5, 5.5) -> column 4 (centre 4.5).
        assert_eq!(f.row_span(0), Some((4, 5)));
        // Row 4 centre y = 4.5: x in [0.5, 9.5) -> columns 0..9.
        assert_eq!(f.row_span(4), Some((0, 9)));
        assert_eq!(f.row_span(10), None);
        let rect = Footprint {
            window: Window {
                row: 2,
                col: 3,
                rows: 2,
                cols: 4,
            },
            polygon: None,
        };
        assert_eq!(rect.row_span(2), Some((3, 7)));
        assert_eq!(rect.pixel_count(), 8);
    }

    #[test]
    fn snapping_extends_bounds_outward_onto_the_lattice() {
        let g = snap(
            "".into(),
            "".into(),
            (30.0, 30.0),
            (15.0, 15.0),
            [100.0, 200.0, 400.0, 500.0],
        );
        assert_eq!(g.gt[0], 75.0);
        assert_eq!(g.gt[3], 525.0);
        assert_eq!((g.width, g.height), (11, 11));
    }
}
