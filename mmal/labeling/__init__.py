"""Active learning on images nobody has labeled: a project on disk, Label Studio and COCO (CVAT) out and in.

``formats``, ``readers``, ``matching``, ``shapes`` and ``project`` are pure Python; ``commands`` (train,
select, export) runs the model; ``labelstudio`` speaks to a Label Studio server through its SDK.
"""
from .formats import BatchImage, Box, Labeled, labeling_config, labelstudio_tasks
from .project import LabelingProject, ProjectState, create_project
from .readers import ImportContext, Returned, read_coco, read_labelstudio, read_returned

__all__ = ['BatchImage', 'Box', 'Labeled', 'labeling_config', 'labelstudio_tasks', 'ImportContext', 'Returned',
           'read_coco', 'read_labelstudio', 'read_returned', 'LabelingProject', 'ProjectState', 'create_project']
