-- Per-pixel Mann-Kendall trend test of clear-sky NDVI (tie-corrected variance,
-- continuity-corrected z, two-sided p-value).
-- Run: sceneql -f sql/mann_kendall.sql -D archive=sample/archive/ -D out=mk.parquet
CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '${archive}';

COPY (
  SELECT pixel, mk.s AS s, mk.tau AS tau, mk.var_s AS var_s, mk.z AS z, mk.p_value AS p_value, mk.n AS n
  FROM (
    SELECT pixel, mann_kendall(ndvi(landsat_sr(nir), landsat_sr(red)), time) AS mk
    FROM obs
    WHERE landsat_clear(qa)
    GROUP BY pixel
  )
) TO '${out}';
