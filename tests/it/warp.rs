//! A scene in a second CRS is warped onto the target grid (nearest
//! neighbour). Checked independently: each grid pixel centre is transformed
//! into the scene's CRS with GDAL's coordinate transformation and looked up in
//! the array the scene was written from.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Int32Type, UInt32Type};
use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};

use super::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scene_in_another_crs_is_warped_onto_the_grid() {
    let dir = tempfile::tempdir().unwrap();
    // Two scenes on UTM 10N (they define the grid), 60 x 50 pixels of 30 m.
    let (x0, y0, px, w, h) = (499_995.0, 4_200_015.0, 30.0, 60usize, 50usize);
    for date in ["20200105", "20200121"] {
        let id = format!("LC08_L2SP_044034_{date}_20200301_02_T1");
        landsat_band(
            dir.path(),
            &id,
            "SR_B4",
            32610,
            (x0, y0),
            px,
            (w, h),
            vec![7u32; w * h],
            Some(0.0),
        );
    }
    // A third scene on UTM 11N covering the same area with 25 m pixels;
    // its values encode their own (row, col): v = 1 + row * 1000 + col.
    let to11 = CoordTransform::new(&srs(32610), &srs(32611)).unwrap();
    let (mut xs, mut ys, mut zs) = (
        vec![x0 - 300.0, x0 + w as f64 * px + 300.0],
        vec![y0 + 300.0, y0 - h as f64 * px - 300.0],
        vec![0.0; 2],
    );
    to11.transform_coords(&mut xs, &mut ys, &mut zs).unwrap();
    let (bx0, by0, bpx) = (xs[0].min(xs[1]).floor(), ys[0].max(ys[1]).ceil(), 25.0);
    let (bw, bh) = (
        ((xs[0] - xs[1]).abs() / bpx) as usize + 4,
        ((ys[0] - ys[1]).abs() / bpx) as usize + 4,
    );
    let values: Vec<u32> = (0..bh)
        .flat_map(|r| (0..bw).map(move |c| 1 + r as u32 * 1000 + c as u32))
        .collect();
    let id = "LC08_L2SP_044034_20200206_20200301_02_T1";
    landsat_band(
        dir.path(),
        id,
        "SR_B4",
        32611,
        (bx0, by0),
        bpx,
        (bw, bh),
        values,
        Some(0.0),
    );

    let ctx = ctx();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{}'",
            location(dir.path())
        ),
    )
    .await;
    let batches = query(
        &ctx,
        &format!("SELECT row, col, sr_b4 FROM obs WHERE scene = '{id}' ORDER BY row, col"),
    )
    .await;
    let from10 = CoordTransform::new(&srs(32610), &srs(32611)).unwrap();
    let (mut n, mut exact) = (0usize, 0usize);
    for b in &batches {
        let (row, col, v) = (
            b.column(0).as_primitive::<Int32Type>(),
            b.column(1).as_primitive::<Int32Type>(),
            b.column(2).as_primitive::<UInt32Type>(),
        );
        for i in 0..b.num_rows() {
            let (r, c) = (row.value(i) as f64, col.value(i) as f64);
            let (mut x, mut y, mut z) = ([x0 + (c + 0.5) * px], [y0 - (r + 0.5) * px], [0.0]);
            from10.transform_coords(&mut x, &mut y, &mut z).unwrap();
            let (er, ec) = (
                ((by0 - y[0]) / bpx).floor() as i64,
                ((x[0] - bx0) / bpx).floor() as i64,
            );
            assert!(!v.is_null(i), "pixel ({r}, {c}) is inside the warped scene");
            let got = v.value(i) as i64 - 1;
            let (gr, gc) = (got / 1000, got % 1000);
            // The warper's approximate transformer may pick a neighbour at pixel edges.
            assert!(
                (gr - er).abs() <= 1 && (gc - ec).abs() <= 1,
                "pixel ({r}, {c}): got source ({gr}, {gc}), expected ({er}, {ec})"
            );
            exact += usize::from(gr == er && gc == ec);
            n += 1;
        }
    }
    assert_eq!(
        n,
        w * h,
        "the warped scene covers the whole grid, one row per pixel"
    );
    assert!(
        exact * 100 >= n * 97,
        "{exact} of {n} pixels took exactly the nearest source pixel"
    );
}

fn srs(epsg: u32) -> SpatialRef {
    let mut s = SpatialRef::from_epsg(epsg).unwrap();
    s.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    s
}
