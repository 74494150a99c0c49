# The toy SSD trained jointly with an LLAL loss-prediction module (for the LossPrediction scorer).
_base_ = './ssd_toyvoc.py'

model = dict(
    type='LLALSingleStageDetector',
    loss_prediction=dict(in_channels=(64, 96, 128, 128), hidden=64),
    llal_margin=1.0,
    llal_weight=1.0,
    detach_after_iter=600)  # about 60% of the 24-epoch schedule on the full toy pool
