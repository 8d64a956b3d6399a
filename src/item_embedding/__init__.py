"""Challenge task 1: build multimodal item embeddings (item_info files) and compare them.

Modules, one job each:
  inputs      read and align item_feature / item_emb / item_seq / item_info, by item_id
  holdout     which users' histories train embeddings and which measure the proxy
  titles      optional third modality: item titles through a packaged sentence encoder
  linear      PCA recipes and the random-projection baseline
  contrastive InfoNCE-trained projection on consecutive history items
  build       one method -> one complete item_info parquet (rescaled, with metadata)
  output      write/read those parquet files
  proxy       next-item recall@K on held-out users
  protocol    tuner configs of the fixed task-1 DIN protocol
  evaluate    proxy + DIN table over several files
  semantic_ids  residual k-means codes of an embedding, categorical item features for task 2
Command line: python -m src.item_embedding {build,encode-titles,evaluate,semantic-ids} --help
"""
