-- Per-pixel OLS trend of cloud-masked NDVI (per year) over a Landsat C2 L2 archive.
-- Run: sceneql -f sql/ndvi_trend.sql -D archive=sample/archive/ -D out=trend.parquet
CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '${archive}';

COPY (
  SELECT pixel, t.slope AS slope, t.intercept AS intercept, t.r2 AS r2,
         t.stderr AS stderr, t.p_value AS p_value, t.n AS n, t.first AS first, t.last AS last
  FROM (
    SELECT pixel, trend(ndvi(landsat_sr(nir), landsat_sr(red)), time) AS t
    FROM obs
    WHERE landsat_clear(qa)
    GROUP BY pixel
  )
) TO '${out}';

-- Summary of the written trends.
CREATE EXTERNAL TABLE trend STORED AS PARQUET LOCATION '${out}';
SELECT count(*) AS pixels,
       round(avg(slope), 5) AS mean_slope_per_year,
       round(min(slope), 5) AS min_slope,
       round(max(slope), 5) AS max_slope,
       round(avg(n), 1) AS mean_clear_obs,
       sum(CASE WHEN p_value < 0.05 THEN 1 ELSE 0 END) AS significant_pixels
FROM trend;
