"""Datasets and dataset generators."""
from .annotations import AnnotationPolicy, SanitizedAnnotations
from .classification import CIFAR10, CIFAR100, Caltech101, Caltech256, ClassFolderDataset, DuplicatedDataset
from .image_pool import ImagePoolDataset
from .semi import LabeledRatioSampler, SemiSupervisedSubset
from .subset import IndexSubset
from .toy_voc import TOY_CLASSES, ToyVOCSpec, generate_toy_voc, toy_voc_exists
from .transforms import PackClsInputs, RandomCropPad

__all__ = ['CIFAR10', 'CIFAR100', 'Caltech101', 'Caltech256', 'ClassFolderDataset', 'DuplicatedDataset',
           'PackClsInputs', 'RandomCropPad', 'ImagePoolDataset', 'IndexSubset', 'TOY_CLASSES', 'ToyVOCSpec',
           'generate_toy_voc', 'toy_voc_exists', 'LabeledRatioSampler', 'SemiSupervisedSubset', 'AnnotationPolicy',
           'SanitizedAnnotations']
