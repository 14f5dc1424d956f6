-- HNSW rebuilt with ef_construction 128 (was 64): on the 100,000-video catalogue it finds about 8 more
-- of every 100 true nearest neighbours at every ef_search, for a 50 % longer build
-- (docs/performance/hnsw.md). m stays 16.
DROP INDEX videos_embedding_hnsw;
CREATE INDEX videos_embedding_hnsw ON videos USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 128);
