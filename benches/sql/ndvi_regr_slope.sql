-- The same GROUP BY pixel as sql/ndvi_trend.sql with DataFusion's built-in
-- regr_slope and a CASE-style mask: the built-in baseline of scripts/bench.sh.
CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '${archive}';

COPY (
  SELECT pixel, regr_slope(ndvi, years) AS slope, regr_intercept(ndvi, years) AS intercept, regr_count(ndvi, years) AS n
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
