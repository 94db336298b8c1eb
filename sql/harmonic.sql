-- Per-pixel harmonic model of clear-sky NDVI (the CCDC / Earth Engine model:
-- 1, t, cos 2 pi t, sin 2 pi t with t in years), and the modelled NDVI on 2021-07-01.
-- Run: sceneql -f sql/harmonic.sql -D archive=sample/archive/ -D out=harmonic.parquet
CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '${archive}';

COPY (
  SELECT pixel,
         h.coefficients AS coefficients,
         h.rmse AS rmse,
         h.r2 AS r2,
         h.n AS n,
         harmonic_predict(h.coefficients, TIMESTAMP '2021-07-01') AS ndvi_2021_07_01
  FROM (
    SELECT pixel, harmonic_fit(ndvi(landsat_sr(nir), landsat_sr(red)), time, 1) AS h
    FROM obs
    WHERE landsat_clear(qa)
    GROUP BY pixel
  )
) TO '${out}';
