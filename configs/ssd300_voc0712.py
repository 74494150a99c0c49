# SSD300 on PASCAL VOC07+12 exactly as mmdet ships it (inherited, not copied), with mmal loaded.
# Expects the VOC data under data/VOCdevkit/{VOC2007,VOC2012}; the VGG-16 backbone is initialised
# from open-mmlab://vgg16_caffe (downloaded on first use).
_base_ = 'mmdet::pascal_voc/ssd300_voc0712.py'
custom_imports = dict(imports=['mmal'], allow_failed_imports=False)
