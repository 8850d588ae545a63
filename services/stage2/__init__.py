"""Stage 2 imaging (calwebb_image2): ``_rate``/``_rateints`` -> ``_cal``/``_calints`` (+ ``_i2d``)."""
