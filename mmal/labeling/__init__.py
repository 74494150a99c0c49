"""Active learning on images nobody has labeled: a project on disk, Label Studio and COCO (CVAT) out and in.

``formats`` and ``project`` are pure Python; ``commands`` (train, select, export) runs the model.
"""
from .formats import BatchImage, Box, Labeled, labeling_config, labelstudio_tasks, read_coco, read_labelstudio
from .project import LabelingProject, ProjectState, create_project

__all__ = ['BatchImage', 'Box', 'Labeled', 'labeling_config', 'labelstudio_tasks', 'read_coco', 'read_labelstudio',
           'LabelingProject', 'ProjectState', 'create_project']
