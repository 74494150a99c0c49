# Active learning on the embedded toy VOC set with the CPU-sized SSD: Random acquisition.
# 100 initial labeled pool images (of 800), +100 per cycle, 4 cycles; 1 trial. Run with
#   python tools/al_train.py configs/demo/ssd_toyvoc_random.py
_base_ = './ssd_toyvoc.py'

active_learning = dict(
    initial_labeled=100,
    budget=100,
    num_cycles=4,
    scorer=dict(type='Random'),
    adapter=dict(box_mode='detections', score_thr=0.5),
    selection='topk',
    retrain='scratch',
    num_trials=1,
    seed=0,
    metric='pascal_voc/mAP',
    batch_size=32)
