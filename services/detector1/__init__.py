"""calwebb_detector1 and calwebb_dark: raw ramps (``_uncal``) to count-rate images (``_rate``)."""
