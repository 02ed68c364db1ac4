"""Model adapters: the only place that imports dlib. OpenCV is used by capture only."""
