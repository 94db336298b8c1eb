-- Per-pixel OLS trend of cloud-masked NDVI (per year) over a Landsat C2 L2 archive.
-- Run: sceneql -f sql/ndvi_trend.sql -D archive=sample/ -D out=trend.parquet
CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '${archive}';

COPY (
  SELECT pixel,
         regr_slope(ndvi, years) AS slope,
         regr_intercept(ndvi, years) AS intercept,
         regr_count(ndvi, years) AS n
  FROM (
    SELECT pixel,
           CAST(time AS BIGINT) / 1e9 / 31557600.0 AS years,
           ((nir * 0.0000275 - 0.2) - (red * 0.0000275 - 0.2))
             / ((nir * 0.0000275 - 0.2) + (red * 0.0000275 - 0.2)) AS ndvi
    FROM obs
    WHERE (qa & 31) = 0
  )
  GROUP BY pixel
) TO '${out}';

-- Summary of the written trends.
CREATE EXTERNAL TABLE trend STORED AS PARQUET LOCATION '${out}';
SELECT count(*) AS pixels,
       round(avg(slope), 5) AS mean_slope_per_year,
       round(min(slope), 5) AS min_slope,
       round(max(slope), 5) AS max_slope,
       round(avg(n), 1) AS mean_clear_obs
FROM trend;
