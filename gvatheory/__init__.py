"""gvatheory: gradient variance amplification in behavior cloning, and iterate averaging that cures it."""
from gvatheory.averaging import Averager, AveragerState, AveragingConfig, averager, bema, ema, polynomial_ema

__all__ = ["Averager", "AveragerState", "AveragingConfig", "averager", "bema", "ema", "polynomial_ema"]
__version__ = "0.1.0"
