"""Visual helpers with no Streamlit: a cached UMAP projection and Plotly figure builders."""
