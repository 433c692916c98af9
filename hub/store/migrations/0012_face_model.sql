-- Which embedding model made each template (issue 13, "a stronger embedding model"): a dlib
-- ResNet vector and an SFace vector are both 128 floats but live in different spaces, so the
-- hub loads only the templates of the model it runs (recognition.model) and names the others
-- in its log until they are re-enrolled. Every template before this migration is dlib's. The
-- face room owns both tables. A manager's applied threshold is a distance of one model too.
ALTER TABLE templates ADD COLUMN model TEXT NOT NULL DEFAULT 'dlib-resnet-v1';
ALTER TABLE threshold_settings ADD COLUMN model TEXT NOT NULL DEFAULT 'dlib-resnet-v1';
