"""Dataset-level membership inference (`mmia infer`): was this set trained on?"""

from mmia.infer.run import NO_EVIDENCE, SETS_DIFFER, TRAINED_ON, infer
from mmia.infer.statistics import SplitTest, control_test, split_test

__all__ = ["NO_EVIDENCE", "SETS_DIFFER", "TRAINED_ON", "SplitTest", "control_test", "infer", "split_test"]
