"""Reading the data: the datasets known, IDX files, downloads and class-balanced sampling."""
