"""Python baselines for scripts/bench.sh, on a sceneql gen-sample archive
(Landsat C2 L2 names: SR_B4, SR_B5, QA_PIXEL per scene folder):

  numpy  ARCHIVE OUT.npy   careful closed-form per-pixel OLS of masked NDVI (one process)
  xarray ARCHIVE OUT.npy   xarray + dask polyfit (what the seed's users ran), 2 threads
  stac-items ARCHIVE HREF_PREFIX OUT.json   a STAC ItemCollection of the archive (USGS Landsat shape)
  odc    ITEMS.json OUT.npy   odc-stac load + xarray/dask polyfit (what a Python user runs on STAC), 2 threads
  floor  ARCHIVE PART N [GDAL_PREFIX]    GDAL (rasterio) read + decode of every N-th band file, from PART
         (with GDAL_PREFIX, e.g. /vsis3/bucket/archive, the same files through it)

Versions are pinned in requirements.txt.
"""
import glob
import os
import sys
import time

import numpy as np
import rasterio
import rasterio.warp

SCALE, OFFSET = 0.0000275, -0.2
YEAR = 31557600.0


def scenes(archive):
    out = []
    for folder in sorted(glob.glob(os.path.join(archive, "*"))):
        scene_id = os.path.basename(folder)
        date = np.datetime64(f"{scene_id[17:21]}-{scene_id[21:23]}-{scene_id[23:25]}", "s")
        years = date.astype("int64") / YEAR
        files = {b: os.path.join(folder, f"{scene_id}_{b}.TIF") for b in ("SR_B4", "SR_B5", "QA_PIXEL")}
        out.append((years, files))
    return out


def union_grid(items):
    bounds = []
    for _, files in items:
        with rasterio.open(files["SR_B4"]) as src:
            bounds.append((src.transform.c, src.transform.f, src.width, src.height, src.transform.a))
    x0 = min(b[0] for b in bounds)
    y0 = max(b[1] for b in bounds)
    res = bounds[0][4]
    width = max(int(round((b[0] - x0) / res)) + b[2] for b in bounds)
    height = max(int(round((y0 - b[1]) / res)) + b[3] for b in bounds)
    return x0, y0, res, width, height


def numpy_ols(archive, out):
    items = scenes(archive)
    x0, y0, res, width, height = union_grid(items)
    n = np.zeros((height, width))
    st = np.zeros((height, width))
    sy = np.zeros((height, width))
    stt = np.zeros((height, width))
    sty = np.zeros((height, width))
    t_ref = items[0][0]
    for years, files in items:
        bands = {}
        for b, path in files.items():
            with rasterio.open(path) as src:
                bands[b] = src.read(1)
                c0 = int(round((src.transform.c - x0) / res))
                r0 = int(round((y0 - src.transform.f) / res))
        red = bands["SR_B4"] * SCALE + OFFSET
        nir = bands["SR_B5"] * SCALE + OFFSET
        qa = bands["QA_PIXEL"]
        ok = (bands["SR_B4"] != 0) & (bands["SR_B5"] != 0) & (qa != 1) & ((qa & 31) == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ndvi = np.where(ok, (nir - red) / (nir + red), 0.0)
        t = years - t_ref
        w = ok.astype(float)
        win = (slice(r0, r0 + qa.shape[0]), slice(c0, c0 + qa.shape[1]))
        n[win] += w
        st[win] += w * t
        sy[win] += ndvi
        stt[win] += w * t * t
        sty[win] += ndvi * t
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (n * sty - st * sy) / (n * stt - st * st)
    np.save(out, slope)


def xarray_polyfit(archive, out):
    import dask
    import rioxarray  # noqa: F401  (registers the rio accessor)
    import xarray as xr

    dask.config.set(scheduler="threads", num_workers=2)
    items = scenes(archive)
    x0, y0, res, width, height = union_grid(items)
    xs = x0 + (np.arange(width) + 0.5) * res
    ys = y0 - (np.arange(height) + 0.5) * res
    layers = []
    for years, files in items:
        da = {b: rioxarray.open_rasterio(p, chunks={"x": 512, "y": 512}).squeeze("band", drop=True) for b, p in files.items()}
        da = {b: v.reindex(x=xs, y=ys, method="nearest", tolerance=res / 4) for b, v in da.items()}
        red = da["SR_B4"].where(da["SR_B4"] != 0) * SCALE + OFFSET
        nir = da["SR_B5"].where(da["SR_B5"] != 0) * SCALE + OFFSET
        qa = da["QA_PIXEL"]
        ndvi = ((nir - red) / (nir + red)).where((qa != 1) & ((qa.fillna(1).astype("int64") & 31) == 0))
        layers.append(ndvi.expand_dims(time=[years]))
    cube = xr.concat(layers, dim="time").chunk({"time": -1, "x": 256, "y": 256})
    fit = cube.polyfit(dim="time", deg=1, skipna=True)
    slope = fit.polyfit_coefficients.sel(degree=1).compute()
    np.save(out, slope.values)


def stac_items(archive, href_prefix, out):
    """A STAC ItemCollection of the archive in the USGS Landsat C2 shape
    (assets red, nir08, qa_pixel with proj:* on the item), its hrefs under
    `href_prefix` (e.g. s3://bench/archive-...), written to `out`."""
    import json

    features = []
    for years, files in scenes(archive):
        scene_id = os.path.basename(os.path.dirname(files["SR_B4"]))
        with rasterio.open(files["SR_B4"]) as src:
            t, epsg, shape = src.transform, src.crs.to_epsg(), [src.height, src.width]
            west, south, east, north = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        date = f"{scene_id[17:21]}-{scene_id[21:23]}-{scene_id[23:25]}T00:00:00Z"

        def asset(band, key, common=None):
            a = {
                "href": f"{href_prefix.rstrip('/')}/{scene_id}/{scene_id}_{band}.TIF",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "raster:bands": [{"nodata": 1 if band == "QA_PIXEL" else 0, "data_type": "uint16"}],
            }
            if common:
                a["eo:bands"] = [{"name": key, "common_name": common}]
            return a

        features.append({
            "type": "Feature", "stac_version": "1.0.0", "id": scene_id,
            "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
            "bbox": [west, south, east, north],
            "geometry": {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]]},
            "properties": {"datetime": date, "platform": "LANDSAT_8", "proj:epsg": epsg, "proj:shape": shape,
                           "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f]},
            "links": [],
            "assets": {"red": asset("SR_B4", "red", "red"), "nir08": asset("SR_B5", "nir08", "nir08"),
                       "qa_pixel": asset("QA_PIXEL", "qa_pixel")},
        })
    with open(out, "w") as f:
        json.dump({"type": "FeatureCollection", "features": features}, f)


def odc_polyfit(items_json, out):
    """What a Python user runs on a STAC collection: odc-stac loads the
    bands (GDAL reading the hrefs), xarray + dask fit the per-pixel trend
    on 2 threads."""
    import json

    import dask
    import odc.stac
    import pystac

    dask.config.set(scheduler="threads", num_workers=2)
    with open(items_json) as f:
        items = [pystac.Item.from_dict(d) for d in json.load(f)["features"]]
    ds = odc.stac.load(items, bands=["red", "nir08", "qa_pixel"], chunks={"x": 512, "y": 512},
                       groupby="id", resampling="nearest")
    red = ds.red.where(ds.red != 0) * SCALE + OFFSET
    nir = ds.nir08.where(ds.nir08 != 0) * SCALE + OFFSET
    qa = ds.qa_pixel
    ndvi = ((nir - red) / (nir + red)).where((qa != 1) & ((qa.astype("int64") & 31) == 0))
    years = ds.time.values.astype("datetime64[s]").astype("int64") / YEAR
    cube = ndvi.assign_coords(time=years).chunk({"time": -1, "x": 256, "y": 256})
    fit = cube.polyfit(dim="time", deg=1, skipna=True)
    slope = fit.polyfit_coefficients.sel(degree=1).compute()
    np.save(out, slope.values)


def floor(archive, part, parts, remote=None):
    """Read and decode every `parts`-th band file from `part`; with `remote`
    (e.g. `/vsis3/bucket/archive`), the same files through that GDAL path."""
    files = sorted(glob.glob(os.path.join(archive, "*", "*.TIF")))
    if remote:
        files = [remote.rstrip("/") + "/" + os.path.relpath(f, archive) for f in files]
    total = 0
    for path in files[part::parts]:
        with rasterio.open(path) as src:
            total += int(src.read(1).size)
    print(total)


if __name__ == "__main__":
    cmd = sys.argv[1]
    start = time.perf_counter()
    if cmd == "numpy":
        numpy_ols(sys.argv[2], sys.argv[3])
    elif cmd == "xarray":
        xarray_polyfit(sys.argv[2], sys.argv[3])
    elif cmd == "stac-items":
        stac_items(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "odc":
        odc_polyfit(sys.argv[2], sys.argv[3])
    elif cmd == "floor":
        floor(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:6])
    print(f"{cmd}: {time.perf_counter() - start:.2f}s", file=sys.stderr)
