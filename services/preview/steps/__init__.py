"""Preview kernels: pure functions over arrays and tables, no files, no catalog.

- :mod:`.display`: the 2-D image shown for each product type (ramp difference, median of
  integrations, cube collapsed along wavelength), masks from DQ and NaN, block averaging;
- :mod:`.stretch`: ZScale limits (percentile fallback) and an asinh stretch;
- :mod:`.orientation`: North/East on the image and an arcsec scale bar from a celestial WCS;
- :mod:`.render_image`: grey (or label-coloured) RGB and the annotated image PNG;
- :mod:`.plots`: spectra and light curves as PNG plots with axis labels and units;
- :mod:`.waterfall`: a time series of spectra as an integration x wavelength image of each
  integration over the median spectrum;
- :mod:`.thumbnail`: the 128 x 128 letterboxed JPEG.

Every renderer gives identical bytes for identical input (no timestamps, no software tags).
"""
